"""Gymnasium's ant against D4RL's (contrl.envs.antgoal.ANT_MODELS) under uniformly random
actions: how often each ends on its back, and how far it gets, in episodes of the mazes'
length. The same body; D4RL's motors give at most 30 N m per joint (Gymnasium's 150) and its
env step lasts 0.1 s (Gymnasium's 0.05 s).

    python benchmarks/ant_models.py [--episodes 20] [--steps 1000] --out benchmarks/results/antmaze/ant_models
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import report_header, write_report


def measure(model: str, episodes: int, steps: int) -> dict:
    """Random-action episodes of ``steps`` steps, each ant started upright at the origin."""
    from gymnasium.envs.mujoco.ant_v5 import AntEnv

    from contrl.envs.antgoal import ANT_MODELS, ant_xml
    from contrl.envs.maze import upright

    env = AntEnv(xml_file=ant_xml(model), terminate_when_unhealthy=False)
    rng = np.random.default_rng(0)
    on_back, first_turn, distance = 0, [], []
    for ep in range(episodes):
        env.reset(seed=ep)
        turned_at = None
        for t in range(steps):
            env.step(rng.uniform(-1.0, 1.0, env.action_space.shape))
            if turned_at is None and not upright(env.data.qpos[3:7]):
                turned_at = t + 1
        on_back += not upright(env.data.qpos[3:7])
        first_turn.append(turned_at)
        distance.append(float(np.linalg.norm(env.data.qpos[:2])))
    turned = [t for t in first_turn if t is not None]
    gear, timestep = ANT_MODELS[model]
    return {"model": model, "gear": gear, "physics_timestep": timestep, "dt": env.dt,
            "episodes": episodes, "steps": steps, "on_back_at_end": on_back,
            "ever_turned_over": len(turned),
            "median_step_of_first_turn": float(np.median(turned)) if turned else None,
            "mean_distance_m": float(np.mean(distance))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    table = [measure(m, a.episodes, a.steps) for m in ("gymnasium", "d4rl")]
    lines = report_header("Ant models under uniformly random actions", "ant_models.py")
    lines += [f"{a.episodes} episodes of {a.steps} steps each, actions uniform in [-1, 1]^8 "
              "(numpy seed 0), env reset seeds 0..N-1, no termination.", "",
              "| ant | motor gear (N m at action 1) | physics step (s) | env step (s) | on its back "
              "at the end | ever turned over | median step of the first turn | mean distance "
              "from the start (m) |", "|---|---|---|---|---|---|---|---|"]
    for r in table:
        first = "-" if r["median_step_of_first_turn"] is None else f"{r['median_step_of_first_turn']:.0f}"
        lines.append(f"| {r['model']} | {r['gear']:g} | {r['physics_timestep']:g} | {r['dt']:g} | "
                     f"{r['on_back_at_end']} / {r['episodes']} | {r['ever_turned_over']} / "
                     f"{r['episodes']} | {first} | {r['mean_distance_m']:.2f} |")
    write_report(a.out, lines, table)


if __name__ == "__main__":
    main()
