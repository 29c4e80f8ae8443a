"""Plot chosen progress.csv columns of one or more runs, one panel per group of columns, and
optionally write a Markdown table of them.

    python benchmarks/plot_curve.py RUN [RUN ...] --out curve.png [--labels A B ...] [--title T]
        [--columns COL[,COL ...] ...] [--ref [PANEL:]NAME=VALUE ...] [--max-step N]

RUN is a run directory or a progress.csv. Each ``--columns`` value is one panel (the columns in
it, comma-separated); the colour tells the runs apart, the line style the columns of a panel.
Without ``--columns``: one panel of training-episode and evaluation returns (``--no-train``
leaves out the former). ``normalized_score`` is computed from ``eval_return`` with the run's
dataset where progress.csv lacks it (offline runs made before their dataset had reference
scores). ``--q-bounds`` draws [min r, max r] / (1 - gamma) of the first run's dataset, the range
of every discounted return of its rewards, in the panels of q_* columns. ``--report FILE.md``
writes, per run: whether every logged metric is finite, the range of each chosen column, and a
table of them (with ``--report-columns`` added) at every logged step. ``--evidence DIR`` copies
each run's progress.csv, config.json and eval.json to DIR/runs/<run>.

CQL stability (the Q values of dataset actions against their bounds, and the score; formerly
benchmarks/cql_stability.py, see benchmarks/results/offline/README.md):

    python benchmarks/plot_curve.py RUN [RUN ...] --labels A B ... --columns q_mean,q_max,q_rand \\
        normalized_score --report-columns cql_penalty --q-bounds --xlabel "gradient steps" \\
        --panel-titles "Q values (mean over each log interval)" "normalized score (100 = expert)" \\
        --title "CQL stability" --out DIR/cql_stability.png --report DIR/cql_stability.md \\
        --evidence DIR
"""
from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

from common import (atomic_write_text, column, comma_list, keep_evidence, progress_csv, pyplot,
                    read_progress, report_header, write_png)

STYLES = ("-", "--", ":", "-.")  # line style of the 1st, 2nd, ... column of a panel
NAMES = {"episode_return": "training episodes", "eval_return": "deterministic eval"}
LOOK = {"episode_return": dict(ls="-", alpha=0.3, lw=1),  # how some columns are drawn
        "eval_return": dict(ls="-", marker="o", ms=3, lw=1.8),
        "normalized_score": dict(marker="o", ms=3)}


def upto(rows: list[dict], max_step: int | None) -> list[dict]:
    return [r for r in rows if max_step is None or int(r["step"]) <= max_step]


def run_config(run: Path) -> dict:
    return json.loads((progress_csv(run).parent / "config.json").read_text())


_DATASETS: dict = {}


def run_dataset(run: Path):
    """The dataset a (offline) run trained on, loaded once per name."""
    from contrl.data.datasets import load_dataset
    cfg = run_config(run)
    key = (cfg["algo_config"]["dataset"], cfg["run"]["env"])
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(*key)
    return _DATASETS[key]


def fill_normalized_score(run: Path, rows: list[dict]) -> None:
    """Add normalized_score (from eval_return and the run's dataset) where a row lacks it."""
    missing = [r for r in rows if r.get("eval_return") and not r.get("normalized_score")]
    if missing:
        data = run_dataset(run)
        for r in missing:
            r["normalized_score"] = str(data.normalized_score(float(r["eval_return"])))


def q_bounds(run: Path) -> tuple[float, float, float]:
    """(gamma, lower, upper): the discounted-return range of the run's dataset's rewards."""
    gamma = float(run_config(run)["algo_config"]["gamma"])
    r = run_dataset(run).rewards
    return gamma, float(r.min()) / (1 - gamma), float(r.max()) / (1 - gamma)


def all_finite(rows: list[dict]) -> bool:
    for r in rows:
        for k, v in r.items():
            if k == "step" or not v:
                continue
            try:
                if not math.isfinite(float(v)):
                    return False
            except ValueError:  # not a number
                pass
    return True


def fmt(v: str | None) -> str:
    return f"{float(v):.2f}" if v else ""


def run_report(run: Path, label: str, rows: list[dict], columns: list[str]) -> list[str]:
    lines = [f"## {label} ({run})", ""]
    if rows:
        lines.append(f"- logged steps: {rows[0]['step']}..{rows[-1]['step']}; every metric "
                     f"finite: {all_finite(rows)}")
    for c in columns:
        _, ys = column(rows, c)
        if len(ys):
            lines.append(f"- {c}: lowest {min(ys):.2f}, highest {max(ys):.2f}")
    lines += ["", "| step | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for r in rows:
        if any(r.get(c) for c in columns):
            lines.append(f"| {r['step']} | " + " | ".join(fmt(r.get(c)) for c in columns) + " |")
    return lines + [""]


def parse_ref(text: str, panels: int) -> tuple[int, str, float]:
    """[PANEL:]NAME=VALUE -> (panel index from 0, name, value); the first panel by default."""
    m = re.match(r"(\d+):(.*)", text)
    panel, text = (int(m.group(1)) - 1, m.group(2)) if m else (0, text)
    if not 0 <= panel < panels:
        raise ValueError(f"--ref {text}: no panel {panel + 1}")
    name, value = text.rsplit("=", 1)
    return panel, name, float(value)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run directories or progress.csv files")
    p.add_argument("--out", type=Path, required=True, help="the figure (e.g. curve.png)")
    p.add_argument("--labels", nargs="+", default=None, help="one legend label per run")
    p.add_argument("--columns", nargs="+", type=comma_list, default=None, metavar="COL[,COL]",
                   help="one panel per value: the progress.csv columns plotted in it "
                        "(default: episode_return,eval_return)")
    p.add_argument("--no-train", action="store_true",
                   help="leave out training-episode returns (default columns only)")
    p.add_argument("--title", default="")
    p.add_argument("--panel-titles", nargs="+", default=None, help="one title per panel")
    p.add_argument("--xlabel", default="environment steps")
    p.add_argument("--ref", action="append", default=[], metavar="[PANEL:]NAME=VALUE",
                   help="horizontal reference line, in the first panel unless PANEL (from 1)")
    p.add_argument("--q-bounds", action="store_true",
                   help="draw the first run's dataset's Q bounds in panels of q_* columns")
    p.add_argument("--max-step", type=int, default=None, help="plot steps up to this one")
    p.add_argument("--report", type=Path, default=None, help="write a Markdown table here")
    p.add_argument("--report-columns", nargs="+", default=[], metavar="COL",
                   help="more columns for the --report table (not plotted)")
    p.add_argument("--evidence", type=Path, default=None,
                   help="copy each run's log, config and eval.json to DIR/runs/<run>")
    a = p.parse_args()
    if a.labels and len(a.labels) != len(a.runs):
        p.error("give one label per run")
    panels = a.columns or [["eval_return"] if a.no_train else ["episode_return", "eval_return"]]
    if a.panel_titles and len(a.panel_titles) != len(panels):
        p.error("give one title per panel")
    try:
        refs = [parse_ref(r, len(panels)) for r in a.ref]
    except ValueError as e:
        p.error(str(e))
    labels = a.labels or [progress_csv(r).parent.name for r in a.runs]
    wanted = {c for cols in panels for c in cols} | set(a.report_columns)

    plt = pyplot()
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(7, 4.2) if n == 1 else (7.5 * n, 4.5), squeeze=False)
    axes = axes[0]
    report = report_header(a.title or "Curves", "plot_curve.py")
    if a.q_bounds:
        if not run_config(a.runs[0])["algo_config"].get("dataset"):
            p.error(f"--q-bounds: {a.runs[0]} trained on no dataset")
        gamma, lo, hi = q_bounds(a.runs[0])
        report += [f"Q bounds from the dataset's rewards: [{lo:.1f}, {hi:.1f}] (gamma {gamma})", ""]
        for i, cols in enumerate(panels):
            if any(c.startswith("q_") for c in cols):
                refs += [(i, "min r / (1 - gamma)", lo), (i, "max r / (1 - gamma)", hi)]
    run_handles = []
    for k, (run, label) in enumerate(zip(a.runs, labels)):
        color = f"C{k}"
        rows = upto(read_progress(run), a.max_step)
        if "normalized_score" in wanted:
            fill_normalized_score(run, rows)
        if a.evidence and run.is_dir():
            keep_evidence(run, a.evidence)
        for ax, cols in zip(axes, panels):
            for j, c in enumerate(cols):
                look = {"ls": STYLES[j % len(STYLES)], **LOOK.get(c, {})}
                ax.plot(*column(rows, c), color=color, **look)
        run_handles.append(plt.Line2D([], [], color=color, lw=1.8, label=label))
        if a.report:
            cols = [c for cols in panels for c in cols] + a.report_columns
            report += run_report(run, label, rows, list(dict.fromkeys(cols)))
    for i, (ax, cols) in enumerate(zip(axes, panels)):
        for panel, name, value in refs:
            if panel == i:
                ax.axhline(value, ls="--", lw=1, color="gray")
                ax.text(ax.get_xlim()[0], value, f" {name}", va="bottom", fontsize=8, color="gray")
        ax.set_xlabel(a.xlabel)
        ax.set_ylabel("return" if all(c.endswith("_return") for c in cols) else ", ".join(cols))
        if a.panel_titles:
            ax.set_title(a.panel_titles[i])
        elif n == 1:
            ax.set_title(a.title)
        ax.grid(alpha=0.3)
        handles = [plt.Line2D([], [], color="black", **{"ls": STYLES[j % len(STYLES)],
                                                        **LOOK.get(c, {}), "alpha": 1},
                              label=NAMES.get(c, c))
                   for j, c in enumerate(cols)] if len(cols) > 1 else []
        if i == n - 1:  # the runs (by colour) in the last panel, with its line styles
            handles = run_handles + handles
        if not handles:
            continue
        if i == n - 1 and len(a.runs) > 3 and n > 1:
            ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
        else:
            ax.legend(handles=handles, fontsize=7, loc="lower right" if n == 1 else "lower left")
    if a.title and (n > 1 or a.panel_titles):
        fig.suptitle(a.title)
    fig.tight_layout()
    write_png(fig, a.out)
    print(a.out)
    if a.report:
        atomic_write_text(a.report, "\n".join(report) + "\n")
        print("\n".join(report))


if __name__ == "__main__":
    main()
