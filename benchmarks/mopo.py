"""MOPO beside IQL and TD3+BC on contrl's offline datasets, at equal gradient steps and at
equal wall time, several seeds; resumable (an interrupted run resumes exactly).

    python benchmarks/mopo.py --datasets halfcheetah-medium-v0 hopper-medium-v0 \\
        walker-walk-medium-v0 --seeds 0 1 --steps 1000000 --eval-every 10000
    python benchmarks/mopo.py --report --datasets ...           # the report only

1. *Equal gradient steps*: every algorithm trains ``--steps`` gradient steps (MOPO's run time
   includes fitting its dynamics ensemble, or the fit of the run whose ensemble it reused).
2. *Equal wall time*: the budget of a (dataset, seed) is MOPO's wall time to ``--steps``. A
   baseline that reached ``--steps`` sooner gets a second run (``...-wall``) of as many steps
   as its measured speed fits in the budget, plus one evaluation interval (a run of its own,
   not the first one resumed: IQL's actor learning rate decays over the run's steps); its
   score is its last evaluation within the budget. A baseline slower than MOPO is read at
   the budget within its first run.

Runs live in <runs-dir>/<algo>-<dataset>-s<seed>[-wall]; ``--set ALGO.FIELD=VALUE`` changes a field
of one algorithm (tuples joined by ':', e.g. ``--set mopo.dynamics_hidden=64:64``). Scores
are normalized (0 = random, 100 = the dataset's reference policy) where the dataset has
reference scores, else returns.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from common import (ROOT, copy_file, keep_evidence, log, pyplot, read_progress, report_header,
                    train_or_resume, write_report)
from offline import env_of, run_dir_for

ALGOS = ("mopo", "iql", "td3bc")


def parse_sets(sets: list[str]) -> dict[str, dict]:
    """``["mopo.horizon=1", ...]`` -> {"mopo": {"horizon": 1}}, values typed by the config."""
    from contrl.sweep import _field_class, _read_value
    out: dict[str, dict] = {}
    for s in sets:
        key, _, text = s.partition("=")
        algo, _, name = key.partition(".")
        if not (algo and name and text):
            raise SystemExit(f"--set {s}: expected ALGO.FIELD=VALUE")
        out.setdefault(algo, {})[name] = _read_value(_field_class(algo, name), name, text)
    return out


def reused_fit_time(run: Path) -> float:
    """Seconds the dynamics fit took in the run whose ensemble ``run`` reused (``--dynamics``);
    0 when ``run`` fitted its own (its clock already counts the fit) or is not a MOPO run."""
    from contrl.agents.dynamics import dynamics_path
    from contrl.run import read_run_config
    source = read_run_config(run)["algo_config"].get("dynamics")
    if not source:
        return 0.0
    fit = dynamics_path(source).parent
    if not (fit / "progress.csv").exists():
        raise SystemExit(f"{run.name}: reused dynamics from {source}, whose fit left no "
                         f"progress.csv ({fit}); its wall time is unknown")
    return float(read_progress(fit)[-1]["time"])


def curve(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(steps, wall times, scores, score name) of a run's evaluations; a run that reused
    another run's dynamics is charged that fit's time."""
    rows = [r for r in read_progress(run) if r.get("eval_return")]
    name = "normalized_score" if rows and rows[-1].get("normalized_score") else "eval_return"
    times = np.array([float(r["time"]) for r in rows]) + reused_fit_time(run)
    return (np.array([int(r["step"]) for r in rows]), times,
            np.array([float(r[name]) for r in rows]), name)


def time_at(run: Path, step: int) -> float:
    """Wall time of a run when it reached ``step`` (its evaluation rows)."""
    steps, times, _, _ = curve(run)
    return float(times[steps <= step][-1])


def train_all(a) -> None:
    for dataset in a.datasets:
        env = env_of(dataset)
        for seed in a.seeds:
            for algo in a.algos:  # equal gradient steps
                over = {"dataset": dataset, "seed": seed, "eval_every": a.eval_every,
                        "tensorboard": False, **a.sets.get(algo, {})}
                train_or_resume(algo, env, over, run_dir_for(a.runs_dir, algo, dataset, seed),
                                a.steps, a.progress)
            budget = time_at(run_dir_for(a.runs_dir, "mopo", dataset, seed), a.steps)
            for algo in a.algos:  # equal wall time: longer runs of the faster baselines
                first = run_dir_for(a.runs_dir, algo, dataset, seed)
                steps, times, _, _ = curve(first)
                if algo == "mopo" or time_at(first, a.steps) >= budget:
                    continue
                more = math.ceil(budget * steps[-1] / times[-1] / a.eval_every + 1) * a.eval_every
                log(f"wall     {first.name}: {times[-1]:.0f} s < {budget:.0f} s; "
                    f"a run of {more} steps")
                over = {"dataset": dataset, "seed": seed, "eval_every": a.eval_every,
                        "tensorboard": False, **a.sets.get(algo, {})}
                train_or_resume(algo, env, over, wall_run(first), more, a.progress)


def wall_run(run: Path) -> Path:
    """The equal-wall-time run of a baseline beside its equal-steps run."""
    return run.with_name(run.name + "-wall")


def stats(values: list[float]) -> str:
    return f"{np.mean(values):.1f} ± {np.std(values):.1f}" if values else "-"


def plot(a, dataset: str) -> None:
    """<out>/<dataset>.png: score against gradient steps and against wall time, every run;
    and MOPO's dynamics validation error per epoch."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for i, algo in enumerate(a.algos):
        for j, seed in enumerate(a.seeds):
            run = run_dir_for(a.runs_dir, algo, dataset, seed)
            for r, style in ((run, "-"), (wall_run(run), ":")):
                if not (r / "progress.csv").exists():
                    continue
                steps, wall, score, name = curve(r)
                label = f"{algo}{' (wall run)' if style == ':' else ''}" if j == 0 else None
                axes[0].plot(steps, score, style, color=f"C{i}", label=label)
                axes[1].plot(wall, score, style, color=f"C{i}", label=label)
                axes[0].set_ylabel(name)
            dyn = run / "dynamics" / "progress.csv"
            if algo == "mopo" and dyn.exists():
                rows = read_progress(dyn)
                axes[2].plot([int(r["step"]) for r in rows],
                             [float(r["val_loss_elites"]) for r in rows], color=f"C{j}",
                             label=f"seed {seed}")
    for ax, xlabel, title in zip(axes, ("gradient steps", "wall time (s)", "epoch"),
                                 ("score vs gradient steps", "score vs wall time",
                                  "dynamics: elites' validation MSE")):
        ax.set_xlabel(xlabel)
        ax.set_title(f"{dataset}: {title}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[2].set_yscale("log")
    fig.tight_layout()
    fig.savefig(a.out / f"{dataset}.png", dpi=110)
    plt.close(fig)


def report(a) -> None:
    lines = report_header("MOPO beside IQL and TD3+BC", "mopo.py", minutes=True) + [
        f"Gradient steps per run: {a.steps:,}; seeds: {', '.join(map(str, a.seeds))}. "
        "Scores: mean ± std over seeds of the last evaluation (equal steps), and of the last "
        "evaluation within MOPO's wall time to the same steps (equal wall time, which includes "
        "MOPO's dynamics training).", "",
        "| dataset | algo | score at equal steps | wall time to those steps (s) | "
        "score at equal wall time | steps within that time |", "|---|---|---|---|---|---|"]
    table = []
    for dataset in a.datasets:
        budgets = {}
        for seed in a.seeds:
            mopo_run = run_dir_for(a.runs_dir, "mopo", dataset, seed)
            if (mopo_run / "progress.csv").exists():
                budgets[seed] = time_at(mopo_run, a.steps)
        for algo in a.algos:
            at_steps, at_time, times, reached, name, cut_short = [], [], [], [], "", 0
            for seed in a.seeds:
                run = run_dir_for(a.runs_dir, algo, dataset, seed)
                if not (run / "progress.csv").exists():
                    continue
                steps, wall, score, name = curve(run)
                if not len(steps) or steps[-1] < a.steps:
                    continue
                keep_evidence(run, a.out)
                if (run / "dynamics" / "progress.csv").exists():
                    copy_file(run / "dynamics" / "progress.csv",
                              a.out / "runs" / run.name / "dynamics-progress.csv")
                upto = steps <= a.steps
                at_steps.append(float(score[upto][-1]))
                times.append(float(wall[upto][-1]))
                if wall_run(run).exists() and (wall_run(run) / "progress.csv").exists():
                    keep_evidence(wall_run(run), a.out)
                    steps, wall, score, _ = curve(wall_run(run))
                elif seed in budgets and wall[-1] < budgets[seed]:
                    cut_short += 1  # ended before MOPO's time, and no longer run was made
                if seed in budgets and np.any(wall <= budgets[seed]):
                    within = wall <= budgets[seed]
                    at_time.append(float(score[within][-1]))
                    reached.append(int(steps[within][-1]))
            if not at_steps:
                continue
            short = f" ({cut_short} run(s) ended sooner; no longer run made)" if cut_short else ""
            lines.append(f"| {dataset} | {algo} | {stats(at_steps)} ({name}) | "
                         f"{np.mean(times):.0f} | {stats(at_time)}{short} | "
                         f"{', '.join(f'{s:,}' for s in reached) or '-'} |")
            table.append({"dataset": dataset, "algo": algo, "score_name": name,
                          "equal_steps": at_steps, "wall_time": times,
                          "equal_wall_time": at_time, "steps_within_time": reached,
                          "runs_without_wall_run": cut_short})
        a.out.mkdir(parents=True, exist_ok=True)
        plot(a, dataset)
    write_report(a.out, lines, table)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", required=True)
    p.add_argument("--algos", nargs="+", default=list(ALGOS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=int, default=1_000_000, help="gradient steps per run")
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="ALGO.FIELD=V")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "mopo")
    p.add_argument("--out", type=Path, default=None,
                   help="report directory (default <runs-dir>/report)")
    p.add_argument("--report", action="store_true", help="only write the report")
    p.add_argument("--progress", action="store_true")
    a = p.parse_args()
    if "mopo" not in a.algos:
        raise SystemExit("--algos must include mopo (its wall time is the budget)")
    a.sets = parse_sets(a.sets)
    a.out = a.out or a.runs_dir / "report"
    if not a.report:
        train_all(a)
    report(a)


if __name__ == "__main__":
    main()
