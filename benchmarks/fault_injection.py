"""Fault injection: a SAC run on Pendulum-v1 killed with SIGKILL at random moments (checkpoints
every 100 steps, so some kills land during a checkpoint write), resumed after each kill, must
end with the same parameters as a straight run and leave no temporary files.

    python benchmarks/fault_injection.py --kills 5 --out benchmarks/results/hardening
"""
from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
from pathlib import Path

from common import atomic_write_json, report_header

OPTS = ["--steps", "20000", "--learning-starts", "300", "--batch-size", "32", "--hidden", "32",
        "32", "--update-every", "4", "--checkpoint-every", "100", "--eval-every", "5000",
        "--eval-episodes", "2", "--seed", "0", "--no-progress", "--no-tensorboard"]


def contrl(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("contrl")), *args]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    out, rng = Path(a.out), random.Random(a.seed)
    runs = out / "fault_runs"
    subprocess.run(contrl("train", "sac", "Pendulum-v1", *OPTS, "--runs-dir", str(runs / "straight")),
                   check=True, stdout=subprocess.DEVNULL)
    straight = next((runs / "straight").iterdir())
    kills, run = [], None
    cmd = contrl("train", "sac", "Pendulum-v1", *OPTS, "--runs-dir", str(runs / "killed"))
    while True:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if len(kills) < a.kills:
            delay = rng.uniform(3.0, 7.0)  # start-up (imports, compilation) takes about 3 s
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills.append(round(delay, 2))
        else:
            proc.wait()
        found = list((runs / "killed").iterdir()) if (runs / "killed").exists() else []
        if found:
            run = found[0]
        if proc.returncode == 0:
            break
        if run is not None:  # (a run killed before its first checkpoint starts over)
            cmd = contrl("train", "sac", "--resume", str(run), "--no-progress")
    from contrl.run import Checkpoint
    ca, cb = (Checkpoint(r / "checkpoints" / "latest.ckpt") for r in (straight, run))
    leftovers = [str(x) for x in run.rglob(".*.tmp")]
    result = {"kills_after_seconds": kills, "same_agent": bytes(ca._npz["agent"]) == bytes(cb._npz["agent"]),
              "final_step": cb.meta["step"], "temporary_files_left": leftovers}
    for ckpt in runs.glob("*/*/checkpoints/*.ckpt"):  # evidence kept: configs and logs
        ckpt.unlink()
    atomic_write_json(out / "fault_injection.json", result)
    print("\n".join(report_header("Fault injection", "fault_injection.py")))
    print(result)


if __name__ == "__main__":
    main()
