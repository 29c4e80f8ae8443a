"""Offline RL benchmark: algorithms x contrl datasets x seeds, resumable, with a report of
normalized scores beside the D4RL-published ones (../shared/reference/ANCHORS.md).

    python benchmarks/offline.py --algos bc iql td3bc cql \\
        --datasets hopper-medium-v0 halfcheetah-medium-v0 --steps 50000 --steps-for cql=10000
    python benchmarks/offline.py --report --algos ... --datasets ...   # table + curves only

Runs live in benchmarks/runs/offline/<algo>-<dataset>-s<seed>; an interrupted run resumes.
The report leaves out a run that has not reached its own configured steps (still running
or stopped) and names it below the table, so a row's curves all end at the same point.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import (ROOT, column, keep_evidence, mean_interval, pyplot, read_progress,
                    report_header, train_or_resume, write_report)

ENVS = {"hopper": "Hopper-v5", "halfcheetah": "HalfCheetah-v5", "walker2d": "Walker2d-v5",
        "pendulum": "Pendulum-v1", "walker-walk": "dmc:walker-walk", "walker-run": "dmc:walker-run"}
# D4RL -v2 normalized scores (CORL README, "last scores"), ../shared/reference/ANCHORS.md
D4RL = {
    "halfcheetah-medium": {"bc": 42.4, "td3bc": 48.1, "cql": 47.0, "iql": 48.3},
    "halfcheetah-medium-replay": {"bc": 35.7, "td3bc": 44.8, "cql": 45.0, "iql": 44.5},
    "halfcheetah-medium-expert": {"bc": 56.0, "td3bc": 90.8, "cql": 95.6, "iql": 94.7},
    "hopper-medium": {"bc": 53.5, "td3bc": 60.4, "cql": 59.1, "iql": 67.5},
    "hopper-medium-replay": {"bc": 29.8, "td3bc": 64.4, "cql": 95.1, "iql": 97.4},
    "hopper-medium-expert": {"bc": 52.3, "td3bc": 101.2, "cql": 99.3, "iql": 107.4},
    "walker2d-medium": {"bc": 63.2, "td3bc": 82.7, "cql": 80.8, "iql": 80.9},
    "walker2d-medium-replay": {"bc": 21.8, "td3bc": 85.6, "cql": 73.1, "iql": 82.2},
    "walker2d-medium-expert": {"bc": 99.0, "td3bc": 110.0, "cql": 109.6, "iql": 111.7},
}


# the published column: D4RL's scores, and for the dm_control walker the seed project's
# behaviour cloning on its own expert data (raw return; its expert 962 walk / 318 run, random
# 56 / 29)
PUBLISHED = {**D4RL, "walker-walk-expert": {"bc": "seed's BC: 131 raw"},
             "walker-run-expert": {"bc": "seed's BC: 53 raw"}}


def env_of(dataset: str) -> str:
    """The env of a contrl dataset name (the longest known prefix: walker-walk-* is
    dmc:walker-walk, walker2d-* Walker2d-v5)."""
    for prefix in sorted(ENVS, key=len, reverse=True):
        if dataset.startswith(prefix + "-"):
            return ENVS[prefix]
    raise SystemExit(f"no env known for dataset {dataset} (known prefixes: {', '.join(ENVS)})")


def run_dir_for(root: Path, algo: str, dataset: str, seed: int) -> Path:
    return root / f"{algo}-{dataset}-s{seed}"


def steps_for(a, algo: str) -> int:
    return a.steps_for.get(algo, a.steps)


def run_grid(a) -> None:
    for dataset in a.datasets:
        for algo in a.algos:
            for seed in a.seeds:
                over = {"dataset": dataset, "seed": seed, "eval_every": a.eval_every,
                        "checkpoint_every": a.checkpoint_every}
                train_or_resume(algo, env_of(dataset), over,
                                run_dir_for(a.runs_dir, algo, dataset, seed),
                                steps_for(a, algo), a.progress)


def dataset_row(dataset: str) -> str:
    from contrl.data.datasets import dataset_metadata
    meta = dataset_metadata(dataset)
    extra = meta.get("contrl", {})
    avg = extra.get("average_return")
    lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
    score = 100 * (avg - lo) / (hi - lo) if None not in (avg, lo, hi) else float("nan")
    return (f"| {dataset} | {meta.get('total_steps'):,} | {meta.get('total_episodes')} | "
            f"{avg:.0f} ({score:.0f}) | {lo:.0f} / {hi:.0f} | {extra.get('policy', '')} |")


def report(a) -> None:
    from contrl.errors import ContrlError
    from contrl.run import read_run_config
    plt = pyplot()
    a.out.mkdir(parents=True, exist_ok=True)
    lines = report_header("Offline RL on contrl-made datasets", "offline.py") + [
             "## Datasets", "",
             "| dataset | steps | episodes | average return (normalized) | ref min / max | made by |",
             "|---|---|---|---|---|---|"]
    for dataset in a.datasets:
        try:
            lines.append(dataset_row(dataset))
        except (ContrlError, TypeError) as e:  # a missing dataset only leaves its row empty
            lines.append(f"| {dataset} | missing ({type(e).__name__}) | | | | |")
    lines += ["", "## Normalized scores (0 = random, 100 = expert policy of the dataset)", "",
              "Deterministic evaluation, 10 episodes per point. final = last evaluation, "
              "last3 = mean of the last three evaluations. D4RL = the published score on the D4RL "
              "dataset of the same name (CORL, 1M gradient steps): **the datasets differ** "
              "(contrl's behaviour policies, expert references and -v5 envs), so compare the "
              "ordering of the methods and their gap to BC, not the numbers. On the dm_control walker "
              "datasets the column holds the seed project's BC (raw return, its own expert data). "
              "The intervals are 95% bootstrap intervals of the mean over seeds.", "",
              "| dataset | algo | seeds | gradient steps | final [95% interval] | last3 [95% interval] | best | "
              "final raw return | published (D4RL; walker: the seed) |",
              "|---|---|---|---|---|---|---|---|---|"]
    table, unfinished = [], []
    for dataset in a.datasets:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for algo in a.algos:
            finals, last3, bests, curves, steps, raws = [], [], [], [], [], []
            for seed in a.seeds:
                run = run_dir_for(a.runs_dir, algo, dataset, seed)
                if not (run / "progress.csv").exists():
                    continue
                rows = read_progress(run)
                target = read_run_config(run)["run"]["steps"]
                reached = int(float(rows[-1]["step"])) if rows else 0
                if reached < target:  # still running, or stopped: its curve would end early
                    unfinished.append(f"{run.name} ({reached:,} of {target:,} steps)")
                    continue
                x, y = column(rows, "normalized_score")
                if len(y) == 0:
                    continue
                keep_evidence(run, a.out)
                finals.append(y[-1])
                last3.append(y[-3:].mean())
                bests.append(y.max())
                curves.append((x, y))
                steps.append(int(x[-1]))
                raws.append(column(rows, "eval_return")[1][-1])
            if not curves:
                continue
            def ci(low, high, n=len(curves)):  # one seed has no interval
                return f"[{low:.1f}, {high:.1f}]" if n > 1 else "(1 seed)"
            lo, hi = mean_interval(finals)[1:]
            lo3, hi3 = mean_interval(last3)[1:]
            for i, (x, y) in enumerate(curves):
                ax.plot(x, y, lw=1.5, label=f"{algo}" if i == 0 else None,
                        color=f"C{a.algos.index(algo)}")
            name = dataset.rsplit("-v", 1)[0]
            ref = PUBLISHED.get(name, {}).get(algo)
            lines.append(f"| {dataset} | {algo} | {len(curves)} | {min(steps):,} | "
                         f"{np.mean(finals):.1f} {ci(lo, hi)} | "
                         f"{np.mean(last3):.1f} {ci(lo3, hi3)} | "
                         f"{np.mean(bests):.1f} | {np.mean(raws):.0f} | "
                         f"{'-' if ref is None else ref} |")
            table.append({"dataset": dataset, "algo": algo, "seeds": len(curves),
                          "steps": min(steps), "final": float(np.mean(finals)),
                          "final_ci": [float(lo), float(hi)], "finals": [float(f) for f in finals],
                          "final_return": float(np.mean(raws)),
                          "last3": float(np.mean(last3)), "last3_ci": [float(lo3), float(hi3)],
                          "best": float(np.mean(bests)),
                          "d4rl": ref})
        ax.set_title(f"{dataset}: normalized score")
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("normalized score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(a.out / f"{dataset}.png", dpi=120)
        plt.close(fig)
    if unfinished:
        lines += ["", f"Unfinished runs, left out: {', '.join(unfinished)}."]
    write_report(a.out, lines, table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=["bc", "iql", "td3bc", "cql"])
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=50_000, help="gradient steps per run")
    p.add_argument("--steps-for", nargs="*", default=[], metavar="ALGO=N",
                   help="per-algorithm gradient steps, e.g. cql=10000")
    p.add_argument("--eval-every", type=int, default=5_000)
    p.add_argument("--checkpoint-every", type=int, default=10_000,
                   help="gradient steps between checkpoints (an offline one holds no buffer: "
                        "3 MB for hopper), so a lost machine costs at most this many")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "offline")
    p.add_argument("--out", type=Path, default=None, help="report directory (default <runs-dir>/report)")
    p.add_argument("--report", action="store_true", help="only write the report")
    p.add_argument("--progress", action="store_true")
    a = p.parse_args()
    a.steps_for = {k: int(v) for k, v in (s.split("=") for s in a.steps_for)}
    a.out = a.out or a.runs_dir / "report"
    if not a.report:
        run_grid(a)
    report(a)


if __name__ == "__main__":
    main()
