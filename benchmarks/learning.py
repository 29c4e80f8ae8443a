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
from pathlib import Path

import numpy as np

from common import (column, comma_list, env_folder, int_list, keep_evidence, pyplot,
                    report_header, run_dir_for, save_figure, train_or_resume, write_report)

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


def run_grid(a) -> None:
    for algo in a.algos:
        for env in a.envs:
            for seed in a.seeds:
                train_or_resume(algo, env, {"seed": seed}, run_dir_for(a.runs_dir, algo, env, seed),
                                a.steps, a.progress)


def report(a) -> None:
    plt = pyplot()
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
                x, y = column(run, "eval_return")
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
        save_figure(fig, ax, f"{env}: deterministic evaluation return",
                    a.out / f"{env_folder(env)}.png")
    write_report(a.out, lines, table)


def main():
    p = argparse.ArgumentParser(description="Run a resumable grid of training runs and report.")
    p.add_argument("--algos", type=comma_list, default=["sac", "td3", "ddpg"])
    p.add_argument("--envs", type=comma_list, default=["Pendulum-v1"])
    p.add_argument("--seeds", type=int_list, default=[0])
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
