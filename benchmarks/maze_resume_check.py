"""A dict-observation goal-reaching env through the command line: SAC on AntMaze_UMaze-v5,
once straight and once killed with SIGKILL after its mid-episode checkpoint, then resumed.
The two must end with the same agent, the same env state (the maze's goal included) and the
same evaluation, which reports success_rate.

    python benchmarks/maze_resume_check.py --out benchmarks/results/shared_layers
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from common import atomic_write_json, atomic_write_text, report_header

ENV = "AntMaze_UMaze-v5"


def contrl(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("contrl")), *args]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--checkpoint-every", type=int, default=1000,
                   help="the run is killed after this checkpoint (mid-episode: episodes last 700)")
    a = p.parse_args()
    out = Path(a.out)
    runs = out / "maze_runs"
    opts = ["--steps", str(a.steps), "--learning-starts", "1000", "--checkpoint-every",
            str(a.checkpoint_every), "--eval-every", str(a.steps // 2), "--eval-episodes", "5",
            "--seed", "0", "--no-progress", "--no-tensorboard"]
    t0 = time.time()
    subprocess.run(contrl("train", "sac", ENV, *opts, "--runs-dir", str(runs / "straight")),
                   check=True, stdout=subprocess.DEVNULL)
    straight = next((runs / "straight").iterdir())
    proc = subprocess.Popen(contrl("train", "sac", ENV, *opts, "--runs-dir", str(runs / "killed")),
                            stdout=subprocess.DEVNULL)
    killed_at = None
    while proc.poll() is None:
        found = list((runs / "killed").glob("*/checkpoints/latest.ckpt"))
        if found:
            from contrl.run import Checkpoint
            step = Checkpoint(found[0]).meta["step"]
            if step >= a.checkpoint_every:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed_at = step
                break
        time.sleep(0.05)
    if killed_at is None:
        raise SystemExit("the run finished before it could be killed")
    killed = next((runs / "killed").iterdir())
    from contrl.run import Checkpoint
    mid = Checkpoint(killed / "checkpoints" / "latest.ckpt").state()
    mid_length = int(mid["pool"]["episode_length"][0])
    mid_goal = np.asarray(mid["pool"]["envs"][0]["attrs"]["goal"])
    subprocess.run(contrl("train", "sac", "--resume", str(killed), "--no-progress"), check=True,
                   stdout=subprocess.DEVNULL)
    ca, cb = (Checkpoint(r / "checkpoints" / "latest.ckpt") for r in (straight, killed))
    sa, sb = ca.state(), cb.state()
    goal_a, goal_b = (np.asarray(s["pool"]["envs"][0]["attrs"]["goal"]) for s in (sa, sb))
    ev_a, ev_b = (json.loads((r / "eval.json").read_text()) for r in (straight, killed))
    result = {
        "killed_at_checkpoint_step": killed_at, "episode_step_at_kill_checkpoint": mid_length,
        "goal_at_kill_checkpoint": mid_goal.tolist(),
        "same_agent": bytes(ca._npz["agent"]) == bytes(cb._npz["agent"]),
        "same_final_goal": bool(np.array_equal(goal_a, goal_b)), "final_goal": goal_a.tolist(),
        "same_final_obs": bool(np.array_equal(sa["pool"]["obs"], sb["pool"]["obs"])),
        "same_eval": ev_a == ev_b, "eval_return": ev_a["mean_return"],
        "success_rate": ev_a.get("success_rate"), "success_interval": ev_a.get("success_interval"),
        "obs_keys": json.loads((straight / "config.json").read_text())["run"]["obs_keys"],
        "minutes": round((time.time() - t0) / 60, 1),
    }
    for ckpt in runs.glob("*/*/checkpoints/*.ckpt"):  # evidence kept: configs, logs, eval.json
        ckpt.unlink()
    atomic_write_json(out / "maze_resume.json", result)
    lines = report_header("AntMaze: kill -9 mid-episode, resume, compare", "maze_resume_check.py")
    lines += ["| check | result |", "|---|---|"] + [f"| {k} | {v} |" for k, v in result.items()]
    atomic_write_text(out / "maze_resume.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
