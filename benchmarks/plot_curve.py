"""Plot evaluation (and training-episode) returns from one or more progress.csv files.

    python benchmarks/plot_curve.py RUN_DIR [RUN_DIR ...] --out curve.png [--title T] [--ref NAME=VALUE ...]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path: Path, column: str):
    xs, ys = [], []
    with open(path) as f:
        for row in csv.DictReader(f):
            if row.get(column):
                xs.append(int(row["step"]))
                ys.append(float(row[column]))
    return xs, ys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="")
    p.add_argument("--ref", action="append", default=[], help="NAME=VALUE horizontal reference line")
    p.add_argument("--labels", nargs="+", default=None, help="one legend label per run")
    p.add_argument("--max-step", type=int, default=None, help="plot steps up to this one")
    p.add_argument("--no-train", action="store_true", help="leave out training-episode returns")
    a = p.parse_args()
    if a.labels and len(a.labels) != len(a.runs):
        p.error("give one label per run")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    def upto(x, y):
        keep = [i for i, s in enumerate(x) if a.max_step is None or s <= a.max_step]
        return [x[i] for i in keep], [y[i] for i in keep]

    for i, run in enumerate(a.runs):
        csv_path = run / "progress.csv" if run.is_dir() else run
        label = a.labels[i] if a.labels else csv_path.parent.name
        if not a.no_train:
            ax.plot(*upto(*read(csv_path, "episode_return")), alpha=0.3, lw=1,
                    label=f"{label} (training episodes)")
        ax.plot(*upto(*read(csv_path, "eval_return")), marker="o", ms=3, lw=1.8,
                label=f"{label} (deterministic eval)")
    for ref in a.ref:
        name, value = ref.rsplit("=", 1)
        ax.axhline(float(value), ls="--", lw=1, color="gray")
        ax.text(ax.get_xlim()[0], float(value), f" {name}", va="bottom", fontsize=8, color="gray")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(a.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(a.out)


if __name__ == "__main__":
    main()
