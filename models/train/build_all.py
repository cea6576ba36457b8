"""Retrain and re-export everything from a seed, in one process chain:

    npm run build && /usr/bin/python3 models/train/build_all.py --seed 0 --fresh

Stages (each a fresh process; a stage whose checkpoint exists in models/train/work/ is skipped, so
a stopped run resumes): policy phase 1 -> revision phase 2 -> baseline -> PRM -> ONNX export with
checks -> evaluation. --fresh deletes models/train/work/ first.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="delete models/train/work/ (cached data, checkpoints)")
    ap.add_argument("--policy-minutes", type=float, default=22)
    ap.add_argument("--revision-minutes", type=float, default=32)
    ap.add_argument("--baseline-minutes", type=float, default=5)
    ap.add_argument("--prm-minutes", type=float, default=11)
    ap.add_argument("--per-level", type=int, default=500, help="test problems per level for the evaluation")
    args = ap.parse_args()
    work = os.path.join(HERE, "work")
    if args.fresh and os.path.isdir(work):
        shutil.rmtree(work)
    os.makedirs(work, exist_ok=True)
    # OpenBLAS runs on OpenMP: busy-waiting threads collapse throughput when the CPU is shared
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    seed = ["--seed", str(args.seed)]
    stages = [
        ["train.py", "policy", "--minutes", str(args.policy_minutes)] + seed,
        ["train.py", "revision", "--minutes", str(args.revision_minutes)] + seed,
        ["train.py", "baseline", "--minutes", str(args.baseline_minutes)] + seed,
        ["prm.py", "--minutes", str(args.prm_minutes)] + seed,
        ["export.py", "--policy-name", "deliberate-griffin-policy"],  # the first generation; the second needs the GPU rounds
        ["evaluate.py", "--per-level", str(args.per_level)] + seed,
    ]
    start = time.time()
    for stage in stages:
        print(f"== {' '.join(stage)} ({(time.time() - start) / 60:.1f} min)", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, stage[0])] + stage[1:], check=True, cwd=HERE, env=env)
    print(f"== done in {(time.time() - start) / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
