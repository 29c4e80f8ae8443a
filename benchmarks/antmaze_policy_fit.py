"""How closely offline policies reproduce their dataset's actions: on a sample of dataset
states, each run's deterministic action against the stored one (mean squared error), and
how large and how saturated the actions are (mean |a|, share of components beyond 0.99).

    python benchmarks/antmaze_policy_fit.py --dataset antmaze-medium-play-v1 \\
        --env AntMaze_Medium_D4RL-v5 RUN [RUN ...] [--states 20000] [--checkpoint latest]
"""
from __future__ import annotations

import argparse

import numpy as np


def action_stats(actions: np.ndarray, reference: np.ndarray | None = None) -> dict:
    """mean |a|, the share of components with |a| > 0.99, and the MSE to ``reference``."""
    out = {"mean_abs": float(np.abs(actions).mean()),
           "at_bound": float((np.abs(actions) > 0.99).mean())}
    if reference is not None:
        out["mse_to_data"] = float(((actions - reference) ** 2).mean())
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories of offline agents")
    p.add_argument("--dataset", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--states", type=int, default=20_000, help="dataset states sampled")
    p.add_argument("--checkpoint", default="latest", choices=("best", "latest"))
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()

    from contrl.data.datasets import load_dataset
    from contrl.rundir import load_agent

    ds = load_dataset(a.dataset, a.env)
    idx = np.random.default_rng(a.seed).choice(len(ds.actions), min(a.states, len(ds.actions)),
                                               replace=False)
    obs, act = ds.observations[idx], ds.actions[idx]
    print("| policy | mean abs action | share at the bound | MSE to the data's actions |")
    print("|---|---|---|---|")
    s = action_stats(act)
    print(f"| the dataset's actions | {s['mean_abs']:.3f} | {s['at_bound']:.3f} | - |")
    for run in a.runs:
        agent, _, algo_cfg, _ = load_agent(run, a.checkpoint)
        s = action_stats(np.asarray(agent.eval_actions(obs)[0]), act)
        widths = getattr(algo_cfg, "actor_widths", algo_cfg.hidden)
        head = getattr(algo_cfg, "head", "")
        print(f"| {run} ({head + ', ' if head else ''}{'x'.join(map(str, widths))}) | "
              f"{s['mean_abs']:.3f} | {s['at_bound']:.3f} | {s['mse_to_data']:.3f} |")


if __name__ == "__main__":
    main()
