#!/bin/sh
# Issue 15's second GPU round: the columnar PRM of the first round (prm_gpu_d128, gpu_run.sh)
# continued for MINUTES with the `equations` rendering (render.py: `columns` plus checks that pair
# a linear equation's step with the line before it), and, as the control, for as long with
# `columns` unchanged; the same whole-solution data as the first round. Then each on the policy's
# samples at 100 test problems per level (rank_check.py). Carry to the GPU machine the files of work/
# that gpu_run.sh's PRM half and rank_check read, and prm_gpu_d128.pt.
set -e
cd "$(dirname "$0")"
MINUTES=${MINUTES:-4}
# checkpoints hold configs and logs beside the weights (torch >= 2.6 loads weights only by default)
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
PRM="--init prm_gpu_d128 --dense --solutions 20000 --solutions-share 0.5 --batch-size ${PRM_BATCH:-512}
     --policy policy_rev_interleaved --policy-problems 3000 --policy-samples 4 --eval-every 1 --minutes $MINUTES"
python3 prm_steps.py $PRM --render equations --name prm_gpu_equations > work/prm_gpu_equations.out 2>&1 &
python3 prm_steps.py $PRM --render columns --name prm_gpu_columns_more > work/prm_gpu_columns_more.out 2>&1 &
wait
for name in prm_gpu_equations prm_gpu_columns_more; do
  python3 rank_check.py --problems-per-level 100 --fresh-samples --policy policy_rev_interleaved \
    --prm $name > work/rank_$name.out 2>&1 || true
done
