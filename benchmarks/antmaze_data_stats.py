"""What a contrl AntMaze dataset holds: transitions, goals reached (terminations), collection
episodes, how many collection episodes reached at least one goal, how long the ant
spent low (torso under 0.3 m: fallen or flipped), and where it went (an x-y coverage map).

    python benchmarks/antmaze_data_stats.py antmaze-medium-play-v0 [...] \\
        --out benchmarks/results/antmaze/datasets
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import atomic_write_text, pyplot

LOW_TORSO = 0.3  # metres; the ant stands at about 0.55-0.75


def stats(name: str) -> dict:
    from contrl.data.datasets import dataset_metadata, load_dataset
    ds = load_dataset(name)
    meta = dataset_metadata(name).get("contrl", {})
    # collection episodes are the consecutive blocks of episode_steps rows (a block usually
    # ends in a timeout; in a termination when its last step reached a goal)
    length = int(meta.get("episode_steps", 1000))
    # (rewarded steps in a single-task dataset: steps ending within 0.45 m of the eval goal)
    reached = ds.terminals[:len(ds.terminals) // length * length].reshape(-1, length).sum(1)
    low = ds.observations[:, 0] < LOW_TORSO
    ends = np.zeros(len(ds.timeouts), bool)
    ends[length - 1::length] = True  # a collection episode's last row
    restarts = int((ds.timeouts & ~ends).sum())  # stored episodes ended by turning over
    return {"name": name, "env_id": ds.env_id, "transitions": int(len(ds.rewards)),
            "goals_reached": int(ds.terminals.sum()), "reward_sum": float(ds.rewards.sum()),
            "collection_episodes": int(len(reached)),
            "episodes_reaching_a_goal": float((reached > 0).mean()) if len(reached) else 0.0,
            "goals_per_episode": float(reached.mean()) if len(reached) else 0.0,
            "low_torso_fraction": float(low.mean()), "turned_over_restarts": restarts,
            "target_cell": meta.get("target_cell"),
            "noise": meta.get("noise"), "cells": meta.get("cells"), "source": meta.get("run")}


def coverage(names: list[str], out: Path) -> str:
    from contrl.data.datasets import load_dataset
    plt = pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        xy = load_dataset(name).observations[:, 27:29]
        ax.hist2d(xy[:, 0], xy[:, 1], bins=60, cmap="viridis", cmin=1)
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=9)
    fig.suptitle("where the ant was (x-y of every transition)")
    fig.tight_layout()
    fig.savefig(out / "coverage.png", dpi=100)
    plt.close(fig)
    return "coverage.png"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/antmaze/datasets"))
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rows = [stats(n) for n in a.names]
    picture = coverage(a.names, a.out)
    lines = ["| dataset | env | transitions | goals reached | collection episodes | reaching a "
             f"goal | goals per episode | torso < {LOW_TORSO} m | turned-over restarts |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['env_id']} | {r['transitions']:,} | {r['goals_reached']} | "
              f"{r['collection_episodes']} | {r['episodes_reaching_a_goal']:.2f} | "
              f"{r['goals_per_episode']:.2f} | {r['low_torso_fraction']:.3f} | "
              f"{r['turned_over_restarts']} |" for r in rows]
    lines += ["", f"![coverage]({picture})", ""]
    atomic_write_text(a.out / "stats.md", "\n".join(lines) + "\n")
    atomic_write_text(a.out / "stats.json", json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
