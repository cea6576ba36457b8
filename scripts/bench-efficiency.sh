#!/bin/sh
# Compute-optimal allocation against PRM-weighted best-of-N and beam search on the synthetic test
# split (disjoint from the calibration split behind models/allocation.json), with the embedded
# models; the report states the efficiency ratio at every budget.
#   npm run bench:efficiency                 # 500 problems, budgets 1,4,16,64
#   N=100 OUT=runs/eff-small npm run bench:efficiency
# 1. The test problems' oracle pass rates (16 samples graded against the gold answer), for the
#    oracle-binned variant only. 2. The benchmark and its report. Both resume when re-run.
set -e
N=${N:-500}
OUT=${OUT:-runs/efficiency}
CLI="node dist/src/cli.js"
$CLI calibrate --difficulty-only --split test --n "$N" --max-steps 12 --max-step-tokens 64 \
  --concurrency 16 --out "$OUT/test-difficulty"
$CLI compare --strategies best-of-n,beam-w4,compute-optimal,compute-optimal-oracle \
  --difficulty-file "$OUT/test-difficulty/difficulty.jsonl" --n "$N" --concurrency 16 --out "$OUT"
