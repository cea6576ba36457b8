#!/bin/sh
# Every search strategy with the embedded policy and PRM on the synthetic test split: PRM-weighted
# best-of-N, majority voting, beam search (width 4), look-ahead (k=1), DVTS (width 4) and revision
# chains, at budgets 1, 4, 16 and 64 generations. The report (OUT/report.md, .html, .json) has the
# accuracy per level and overall, generated tokens and FLOPs per problem, the winner per level and
# budget, and the plots.
#   npm run bench:strategies                          # 500 problems: hours on two CPU cores
#   N=50 BUDGETS=1,4,16 OUT=runs/strategies-small npm run bench:strategies
# Stopped, the same command resumes where it was.
set -e
N=${N:-500}
BUDGETS=${BUDGETS:-1,4,16,64}
OUT=${OUT:-runs/strategies}
node dist/src/cli.js compare --strategies best-of-n,majority,beam-w4,lookahead-k1,dvts-w4,revision-r1 \
  --budgets "$BUDGETS" --n "$N" --concurrency 16 --out "$OUT"
