"""Behaviour check across a refactor: short fixed-seed runs of SAC, TD3 (Pendulum-v1), PPO
(InvertedPendulum-v5), BC and IQL (on a Pendulum dataset collected from the SAC run), through
the command line only, so the same script runs on any checkout of contrl.

Records, per run, the final evaluation and the last logged losses at full precision; two
checkouts whose computation is the same give identical numbers.

    python benchmarks/behaviour_check.py --out before.json   # in the old checkout
    python benchmarks/behaviour_check.py --out after.json --compare before.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

COMMON = ["--seed", "0", "--no-tensorboard", "--no-progress"]
# name -> (train arguments, whether it needs the dataset)
RUNS = {
    "sac": ["sac", "Pendulum-v1", "--steps", "6000", "--eval-every", "3000"],
    "td3": ["td3", "Pendulum-v1", "--steps", "6000", "--eval-every", "3000"],
    "ppo": ["ppo", "InvertedPendulum-v5", "--steps", "16384", "--eval-every", "8192"],
    "bc": ["bc", "Pendulum-v1", "--steps", "2000", "--eval-every", "1000"],
    "iql": ["iql", "Pendulum-v1", "--steps", "4000", "--eval-every", "2000"],
}


def contrl(*args: str, env=None) -> None:
    exe = Path(sys.executable).with_name("contrl")
    subprocess.run([str(exe), *args], check=True, env=env, stdout=subprocess.DEVNULL)


def last_row(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "progress.csv")))
    return {k: v for k, v in rows[-1].items() if v not in ("", None)
            and k not in ("time", "steps_per_sec")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--compare", default=None, help="a previous output to compare with")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MINARI_DATASETS_PATH": str(Path(tmp) / "minari")}
        for name, argv in RUNS.items():
            run = Path(tmp) / name
            extra = []
            if name in ("bc", "iql"):
                if not (Path(tmp) / "minari" / "pendulum-check-v0").exists():
                    contrl("collect", str(Path(tmp) / "sac"), "--name", "pendulum-check-v0",
                           "--steps", "10000", "--noise", "0.3", env=env)
                extra = ["--dataset", "pendulum-check-v0"]
            # --runs-dir is a parent; the run directory is its only child
            contrl("train", *argv, *COMMON, *extra, "--runs-dir", str(run), env=env)
            (child,) = list(run.iterdir())
            child.rename(run.with_name(name + "-run"))
            run.rmdir()
            run.with_name(name + "-run").rename(run)
            ev = json.loads((run / "eval.json").read_text())
            results[name] = {"command": "contrl train " + " ".join(argv + COMMON + extra),
                             "eval_return": ev["mean_return"], "returns": ev["returns"],
                             "last_row": last_row(run)}
            print(name, ev["mean_return"], flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        for name, r in results.items():
            b = before.get(name)
            same = b is not None and b["returns"] == r["returns"] and b["last_row"] == r["last_row"]
            print(f"{name}: before {b and b['eval_return']}, after {r['eval_return']}, "
                  f"{'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
