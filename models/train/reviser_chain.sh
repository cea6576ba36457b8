#!/bin/sh
# The reviser rev_keep6 (deliberate-griffin-policy-4) from the second-generation policy (rev_gpu_s25),
# in the four rounds of models/README.md ("The reviser": rev_keep, rev_keep2, rev_keep3, rev_keep4,
# each for the number of steps its wall-clock run reached, so that the result does not depend on the
# machine's speed) and the two of "The fifteenth session" (rev_keep5, rev_keep6: more keep examples,
# lower learning rates). Then the revision check at 500 test problems per level
# (models/eval-revision.json). Needs node and the built CLI (labels); about 90 minutes on two CPU threads.
#   THREADS=2 sh models/train/reviser_chain.sh
set -e
cd "$(dirname "$0")"
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1 TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
# rev_gpu_s25, the policy shipped before rev_keep4 (deliberate-griffin-policy-2), read back from its graphs in git
if [ ! -f work/rev_gpu_s25.pt ]; then
  mkdir -p work/policy-2
  for f in config.json golden.json prefill.onnx; do git show c6e7835:models/policy/$f > work/policy-2/$f; done
  /usr/bin/python3 from_onnx.py --policy-dir work/policy-2
fi
R="revision-interleaved --ladder 2 --attempts 4000 --revision-share 0.5 --threads $THREADS"
/usr/bin/python3 train.py $R --init rev_gpu_s25 --name rev_keep --keep-ratio 2 --lr 3e-4 --steps 1191
/usr/bin/python3 train.py $R --init rev_keep --name rev_keep2 --samples rev_keep_samples --keep-ratio 3 --lr 2e-4 \
  --steps 760
/usr/bin/python3 train.py $R --seed 1 --init rev_keep2 --name rev_keep3 --keep-ratio 3 --lr 1.5e-4 --steps 526
/usr/bin/python3 train.py $R --seed 2 --init rev_keep3 --name rev_keep4 --keep-ratio 3 --lr 1e-4 --steps 603
/usr/bin/python3 train.py $R --seed 3 --init rev_keep4 --name rev_keep5 --keep-ratio 3.4 --lr 1e-4 --steps 603
/usr/bin/python3 train.py $R --seed 4 --init rev_keep5 --name rev_keep6 --keep-ratio 3.4 --lr 8e-5 --steps 603
/usr/bin/python3 evaluate.py --per-level 500 --policy rev_keep6 --revision-only --ladder 2 --threads "$THREADS"
