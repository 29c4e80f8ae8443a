"""Learning benchmark: a grid of algorithms x environments x seeds, resumable.

Each run lives in ``<runs-dir>/<algo>-<env>-s<seed>``; a finished run is skipped, an unfinished
one resumed from its latest checkpoint. Afterwards the script writes a results table (final and
best evaluation return per run, mean and std over seeds) and one learning-curve plot per
environment with the published reference returns drawn in.

    python benchmarks/learning.py --algos sac,td3,ddpg --envs Pendulum-v1 --seeds 0,1,2 \\
        --out benchmarks/results/learning_pendulum
    python benchmarks/learning.py --algos sac --envs Hopper-v5 --seeds 0 --steps 300000 --report-only
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

# Published returns (../shared/reference/ANCHORS.md); label -> value, per (algo, env).
REFERENCES = {
    ("sac", "HalfCheetah-v5"): {"RL Zoo 1M": 9535.5, "Tianshou 1M": 12138.8},
    ("sac", "Hopper-v5"): {"RL Zoo 1M": 2325.5, "Tianshou 1M": 3542.2},
    ("sac", "Walker2d-v5"): {"RL Zoo 1M": 3863.2, "Tianshou 1M": 5007.0},
    ("td3", "HalfCheetah-v5"): {"RL Zoo 1M": 9655.7, "Tianshou 1M": 10201.2},
    ("td3", "Hopper-v5"): {"RL Zoo 1M": 3606.4, "Tianshou 1M": 3472.2},
    ("td3", "Walker2d-v5"): {"RL Zoo 1M": 4717.8, "Tianshou 1M": 3982.4},
    ("ddpg", "HalfCheetah-v5"): {"CleanRL 1M": 10374.1, "Tianshou 1M": 11718.7},
    ("ddpg", "Hopper-v5"): {"CleanRL 1M": 1576.8, "Tianshou 1M": 2197.0},
    ("ppo", "HalfCheetah-v5"): {"RL Zoo 1M": 5819.1, "Tianshou 1M": 5783.9, "CleanRL 1M": 2905.9},
    ("ppo", "Hopper-v5"): {"RL Zoo 1M": 2410.4, "Tianshou 1M": 2609.3, "CleanRL 1M": 2051.8},
    ("ppo", "Walker2d-v5"): {"RL Zoo 1M": 3478.8, "Tianshou 1M": 3588.5, "CleanRL 1M": 2891.0},
    ("a2c", "HalfCheetah-v5"): {"RL Zoo 1M": 3041.2, "Tianshou 1M": 1829.9},
    ("a2c", "Hopper-v5"): {"RL Zoo 1M": 733.5, "Tianshou 1M": 1253.2},
    ("sac", "Pendulum-v1"): {"RL Zoo SAC 20k": -157.0},
    ("td3", "Pendulum-v1"): {"RL Zoo TD3 20k": -152.0},
    ("sac", "dmc:walker-walk"): {"TD-MPC 500k": 977.0},
    ("sac", "dmc:walker-run"): {"TD-MPC 500k": 820.0},
}


def run_dir_for(root: Path, algo: str, env: str, seed: int) -> Path:
    return root / f"{algo}-{env.replace(':', '_')}-s{seed}"


def finished_step(run: Path) -> int:
    from contrl.run import Checkpoint
    path = run / "checkpoints" / "latest.ckpt"
    return Checkpoint(path).meta.get("step", 0) if path.exists() else -1


def keep_evidence(run: Path, out: Path) -> None:
    """Copy a run's log, config and last evaluation to <out>/runs/<run name>."""
    keep = out / "runs" / run.name
    keep.mkdir(parents=True, exist_ok=True)
    for name in ("progress.csv", "config.json", "eval.json"):
        if (run / name).exists():
            shutil.copyfile(run / name, keep / name)


def report_header(title: str, script: str) -> list[str]:
    """A report's first lines: title with today's date, machine, and the command that ran."""
    return [f"# {title} ({datetime.now(timezone.utc):%Y-%m-%d} UTC)", "",
            f"machine: {platform.machine()}, {os.cpu_count()} cores, CPU only; command: "
            f"`python benchmarks/{script} {' '.join(sys.argv[1:])}`", ""]


def write_report(out: Path, lines: list[str], table: list[dict]) -> None:
    """results.md (the markdown lines) and results.json (the table), then print the lines."""
    (out / "results.md").write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps(table, indent=2) + "\n")
    print("\n".join(lines))


def run_grid(a) -> None:
    from contrl.train import train
    for algo in a.algos:
        for env in a.envs:
            for seed in a.seeds:
                run = run_dir_for(a.runs_dir, algo, env, seed)
                over = {"seed": seed, "progress": a.progress}
                if a.steps:
                    over["steps"] = a.steps
                done = finished_step(run)
                target = a.steps or (json.loads((run / "config.json").read_text())["run"]["steps"]
                                     if done >= 0 else None)
                if done >= 0 and done >= target:
                    print(f"done     {run.name} ({done} steps)")
                    continue
                if done >= 0:
                    print(f"resume   {run.name} from step {done}", flush=True)
                    out = train(algo, env, {k: v for k, v in over.items() if k != "seed"},
                                resume=str(run))
                else:
                    print(f"start    {run.name}", flush=True)
                    out = train(algo, env, over, run_dir=str(run))
                ev = out.get("eval") or {}
                print(f"finished {run.name}: step {out['step']} eval {ev.get('mean_return')}",
                      flush=True)


def read_curve(run: Path):
    steps, evals = [], []
    with open(run / "progress.csv") as f:
        for row in csv.DictReader(f):
            if row.get("eval_return"):
                steps.append(int(row["step"]))
                evals.append(float(row["eval_return"]))
    return np.array(steps), np.array(evals)


def report(a) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a.out.mkdir(parents=True, exist_ok=True)
    lines = report_header("Learning benchmark", "learning.py") + [
             "Deterministic evaluation, 10 episodes per point. final = last evaluation; best = "
             "best evaluation during the run. References are published figures "
             "(../shared/reference/ANCHORS.md), mostly at 1M steps: compare at equal steps.", "",
             "| algo | env | seeds | steps | final (mean +/- std) | best (mean +/- std) | per seed final | reference |",
             "|---|---|---|---|---|---|---|---|"]
    table = []
    for env in a.envs:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for algo in a.algos:
            curves, finals, bests, steps = [], [], [], []
            for seed in a.seeds:
                run = run_dir_for(a.runs_dir, algo, env, seed)
                if not (run / "progress.csv").exists():
                    continue
                x, y = read_curve(run)
                if len(y) == 0:
                    continue
                keep_evidence(run, a.out)
                curves.append((x, y))
                finals.append(y[-1])
                bests.append(y.max())
                steps.append(int(x[-1]))
            if not curves:
                continue
            n = min(len(c[0]) for c in curves)
            xs = curves[0][0][:n]
            ys = np.stack([c[1][:n] for c in curves])
            line, = ax.plot(xs, ys.mean(0), lw=1.8, label=f"{algo} ({len(curves)} seed(s))")
            if len(curves) > 1:
                ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.2, color=line.get_color())
            refs = REFERENCES.get((algo, env), {})
            for name, value in refs.items():
                ax.axhline(value, ls="--", lw=0.8, color=line.get_color())
                ax.text(xs[0], value, f" {algo} {name}", fontsize=7, va="bottom",
                        color=line.get_color())
            ref = "; ".join(f"{k}: {v:g}" for k, v in refs.items()) or "-"
            lines.append(
                f"| {algo} | {env} | {len(curves)} | {min(steps):,} | {np.mean(finals):.1f} +/- "
                f"{np.std(finals):.1f} | {np.mean(bests):.1f} +/- {np.std(bests):.1f} | "
                f"{', '.join(f'{v:.1f}' for v in finals)} | {ref} |")
            table.append({"algo": algo, "env": env, "seeds": len(curves), "steps": min(steps),
                          "final_mean": float(np.mean(finals)), "final_std": float(np.std(finals)),
                          "best_mean": float(np.mean(bests)), "best_std": float(np.std(bests)),
                          "finals": [float(v) for v in finals]})
        ax.set_title(f"{env}: deterministic evaluation return")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(a.out / f"{env.replace(':', '_')}.png", dpi=120)
        plt.close(fig)
    write_report(a.out, lines, table)


def main():
    p = argparse.ArgumentParser(description="Run a resumable grid of training runs and report.")
    p.add_argument("--algos", type=lambda s: s.split(","), default=["sac", "td3", "ddpg"])
    p.add_argument("--envs", type=lambda s: s.split(","), default=["Pendulum-v1"])
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0])
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: preset)")
    p.add_argument("--runs-dir", type=Path, default=Path("benchmarks/runs/grid"))
    p.add_argument("--out", type=Path, default=None,
                   help="where the report goes (default: <runs-dir>/report, outside git)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    a = p.parse_args()
    a.out = a.out or a.runs_dir / "report"
    if not a.report_only:
        run_grid(a)
    report(a)


if __name__ == "__main__":
    main()
