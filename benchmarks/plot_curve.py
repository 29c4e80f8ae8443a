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
    a = p.parse_args()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for run in a.runs:
        csv_path = run / "progress.csv" if run.is_dir() else run
        label = csv_path.parent.name
        x, y = read(csv_path, "episode_return")
        ax.plot(x, y, alpha=0.3, lw=1, label=f"{label} (training episodes)")
        x, y = read(csv_path, "eval_return")
        ax.plot(x, y, marker="o", ms=3, lw=1.8, label=f"{label} (deterministic eval)")
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
