#!/bin/sh
# Issue 15's GPU round: four trainings side by side on one GPU, from inputs sampled and labelled
# beforehand on a machine with node (the GPU machine has none):
#   prm_gpu_d128, prm_gpu_d256  the columnar PRM (prm_steps.py) from scratch, at the policy's width
#                               and at twice it, on generated single-step checks, corrupted gold
#                               solutions and policy_rev_interleaved's own labelled samples;
#   rev_gpu_s25, rev_gpu_s40    the interleaved reviser continued from policy_rev_interleaved on its
#                               own attempts at 16,000 fresh train problems, with 25% and 40% of
#                               draws revision examples.
# Prepare (here, with node; about 15 minutes on two cores):
#   python3 train.py revision-interleaved --seed 1 --init policy_rev_interleaved \
#       --name policy_rev_interleaved2 --attempts 16000 --sample-only --minutes 1
#   python3 prm_steps.py --render columns --dense --fast-lru 0.5 --minutes 1 --solutions 20000 \
#       --solutions-share 0.5 --policy policy_rev_interleaved --policy-problems 3000 \
#       --policy-samples 4 --name prep_prm --sample-only
#   python3 rank_check.py --problems-per-level 100 --fresh-samples --policy policy_rev_interleaved --prm prm
# then carry those files of work/ to the GPU machine and run this there with MINUTES of training each
# (models/README.md, "The GPU round").
# Writes its checkpoints and logs to work/.
set -e
cd "$(dirname "$0")"
MINUTES=${MINUTES:-7}
PRM_BATCH=${PRM_BATCH:-512}
LM_BATCH=${LM_BATCH:-256}
# checkpoints hold configs and logs beside the weights (torch >= 2.6 loads weights only by default)
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
PRM="--render columns --dense --fast-lru 0.5 --solutions 20000 --solutions-share 0.5
     --policy policy_rev_interleaved --policy-problems 3000 --policy-samples 4 --eval-every 1"
python3 prm_steps.py $PRM --d-model 128 --batch-size "$PRM_BATCH" --minutes "$MINUTES" --name prm_gpu_d128 \
  > work/prm_gpu_d128.out 2>&1 &
python3 prm_steps.py $PRM --d-model 256 --batch-size "$PRM_BATCH" --minutes "$MINUTES" --name prm_gpu_d256 \
  > work/prm_gpu_d256.out 2>&1 &
for share in 25 40; do
  python3 train.py revision-interleaved --seed 1 --init policy_rev_interleaved --name rev_gpu_s$share \
    --attempts 16000 --samples policy_rev_interleaved2_samples --revision-share 0.$share --batch-size "$LM_BATCH" --minutes "$MINUTES" \
    > work/rev_gpu_s$share.out 2>&1 &
done
wait
# each PRM on the policy's 16 samples at 100 test problems per level (labelled beforehand by
# `rank_check.py --fresh-samples --policy policy_rev_interleaved --problems-per-level 100`)
for d in 128 256; do
  python3 rank_check.py --problems-per-level 100 --fresh-samples --policy policy_rev_interleaved \
    --prm prm_gpu_d$d > work/rank_prm_gpu_d$d.out 2>&1 || true
done
