"""CQL stability on expert-only data: Q values against their bounds, and the score.

One of the seeds trained CQL-SAC on expert dm_control walker data and saw the critic blow up
(Q through r / (1 - gamma) loops, huge TD errors at episode ends, NaNs). This report reads
CQL runs' progress.csv and checks what that seed saw go wrong: every logged metric finite, and
the Q values of dataset actions inside [min r, max r] / (1 - gamma), the range any return of
the dataset's rewards can take. The runs themselves are plain contrl commands:

    contrl collect benchmarks/runs/grid/sac-dmc_walker-walk-s0 --name walker-walk-expert-v0 \\
        --steps 200000 --num-envs 4
    contrl train cql dmc:walker-walk --dataset walker-walk-expert-v0 --steps 20000 \\
        --eval-every 2000 --checkpoint-every 2000 --runs-dir benchmarks/runs/cql_walker
    python benchmarks/cql_stability.py RUN [RUN ...] --labels A B --out DIR
"""
from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from learning import keep_evidence, report_header  # noqa: E402  (this script's directory is on sys.path)

Q_STYLES = {"q_mean": "-", "q_max": "--", "q_rand": ":"}  # the Q columns plotted, and how


def read_rows(run: Path) -> list[dict]:
    with open(run / "progress.csv") as f:
        return list(csv.DictReader(f))


def series(rows: list[dict], column: str) -> tuple[list[int], list[float]]:
    pts = [(int(r["step"]), float(r[column])) for r in rows if r.get(column)]
    return [p[0] for p in pts], [p[1] for p in pts]


def q_bounds(run: Path) -> tuple[float, float, float, object]:
    """(gamma, lower, upper, dataset): the discounted-return range of the dataset's rewards."""
    from contrl.data.datasets import load_dataset
    cfg = json.loads((run / "config.json").read_text())
    algo = cfg["algo_config"]
    data = load_dataset(algo["dataset"], cfg["run"]["env"])
    gamma = float(algo["gamma"])
    r = data.rewards
    return gamma, float(r.min()) / (1 - gamma), float(r.max()) / (1 - gamma), data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--labels", nargs="+", default=None)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    labels = a.labels or [r.name for r in a.runs]
    if len(labels) != len(a.runs):
        p.error("give one label per run")
    a.out.mkdir(parents=True, exist_ok=True)
    gamma, lo, hi, data = q_bounds(a.runs[0])

    fig, (ax_q, ax_s) = plt.subplots(1, 2, figsize=(15, 4.5))
    lines = report_header("CQL stability", "cql_stability.py") + [
        f"Q bounds from the dataset's rewards: [{lo:.1f}, {hi:.1f}] (gamma {gamma})", ""]
    for i, (run, label) in enumerate(zip(a.runs, labels)):
        color = f"C{i}"
        rows = read_rows(run)
        keep_evidence(run, a.out)
        finite = all(math.isfinite(float(v)) for r in rows for k, v in r.items()
                     if v and k not in ("step",))
        for col, style in Q_STYLES.items():
            ax_q.plot(*series(rows, col), style, color=color)
        steps, returns = series(rows, "eval_return")  # scored here: runs made before the
        scores = dict(zip(steps, map(data.normalized_score, returns)))  # dmc refs fix lack it
        ax_s.plot(list(scores), list(scores.values()), marker="o", ms=3, color=color, label=label)
        qmax = max(series(rows, "q_max")[1] or [float("nan")])
        qmin = min(series(rows, "q_mean")[1] or [float("nan")])
        last = rows[-1]
        lines += [f"## {label} ({run})", "",
                  f"- logged steps: {rows[0]['step']}..{last['step']}; every metric finite: {finite}",
                  f"- highest batch max of Q(s, a_data): {qmax:.2f}; lowest batch mean: {qmin:.2f}",
                  "", "| step | q_mean | q_max | q_rand | cql_penalty | normalized score |",
                  "|---|---|---|---|---|---|"]
        for r in rows:
            s = int(r["step"])
            lines.append(f"| {s} | {float(r['q_mean']):.2f} | {float(r['q_max']):.2f} | "
                         f"{float(r['q_rand']):.2f} | {float(r['cql_penalty']):.2f} | "
                         f"{scores.get(s, float('nan')):.1f} |".replace("| nan |", "| |"))
        lines.append("")
    for ax in (ax_q,):
        ax.axhline(lo, color="gray", lw=1, ls="--")
        ax.axhline(hi, color="gray", lw=1, ls="--")
        ax.text(ax.get_xlim()[0], hi, " max r / (1 - gamma)", va="bottom", fontsize=8, color="gray")
    ax_q.set_title("Q values (mean over each log interval)")
    ax_s.set_title("normalized score (100 = expert)")
    for col, style in Q_STYLES.items():  # line styles: one key for all runs
        ax_q.plot([], [], style, color="black", label=col)
    ax_q.legend(fontsize=7, loc="lower left")
    ax_s.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # runs, by colour
    for ax in (ax_q, ax_s):
        ax.set_xlabel("gradient steps")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out / "cql_stability.png", dpi=120)
    (a.out / "cql_stability.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
