#!/bin/sh
# Issue 15's fraction round: the shipped PRM (models/prm-columns, read back by from_onnx.py as
# work/prm_columns.pt) continued for MINUTES in the `fractions` rendering (render.py: `grounded`
# plus each fraction a step converts or simplifies checked as two cross products in shared columns),
# and, as the control, for as long in `grounded`; the same data: generated single steps (ladder 2's
# products and fraction rewrites among them), gold solutions of ladders 1 and 2 with one step
# corrupted or a number copied wrong, and policy-4's own labelled samples. Then each on policy-4's 16
# samples at 100 test problems per level of ladder 2 (rank_check.py).
# Prepare (here, with node, on two cores):
#   python3 from_onnx.py
#   python3 prm_steps.py $PRM_DATA --render fractions --minutes 1 --sample-only --name prep_fractions
#   python3 rank_check.py --problems-per-level 100 --fresh-samples --policy rev_keep6 --ladder 2 --prm prm_columns
# with PRM_DATA as below, then carry models/train/work to the GPU machine and run this there.
set -e
cd "$(dirname "$0")"
MINUTES=${MINUTES:-5}
# checkpoints hold configs and logs beside the weights (torch >= 2.6 loads weights only by default)
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
PRM_DATA="--dense --solutions 20000 --solutions-share 0.5 --copy-errors 0.3 --ladder 1,2 --steps-ladder 2
          --product-share 0.3 --partial-slips --ratio-share 0.3 --policy rev_keep6 --policy-problems 1000
          --policy-samples 4"
PRM="$PRM_DATA --init prm_columns --batch-size ${PRM_BATCH:-512} --lr 5e-4 --eval-every 1 --minutes $MINUTES"
python3 prm_steps.py $PRM --render fractions --name prm_gpu_fractions > work/prm_gpu_fractions.out 2>&1 &
python3 prm_steps.py $PRM --render grounded --name prm_gpu_grounded_more > work/prm_gpu_grounded_more.out 2>&1 &
wait
for name in prm_gpu_fractions prm_gpu_grounded_more; do
  python3 rank_check.py --problems-per-level 100 --fresh-samples --policy rev_keep6 --ladder 2 \
    --prm $name > work/rank_$name.out 2>&1 || true
done
