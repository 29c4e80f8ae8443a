"""D4RL-style AntMaze datasets made by contrl: a goal-reaching ant (trained on ``AntGoal-v2``)
driven through a maze by the waypoint planner, with Gaussian action noise.

How (as D4RL made its antmaze datasets, with what differs said):

- every episode lasts ``episode_steps`` (1000) steps and ends with a truncation (a timeout);
  the maze never terminates an episode, so every termination is False;
- the start and the first goal are drawn per episode: ``fixed`` (umaze) always the same two
  cells; ``play``: cells of a hand-picked set, here gymnasium-robotics' own goal/reset cells
  of the ``Diverse_GR`` maps (marked ``c``); ``diverse``: any free cells; positions get the
  env's own noise within the cell;
- the reward is the env's own: 1 at a step that ends within 0.45 m of the goal, else 0;
- when the goal is reached a fresh one is drawn (from the same set, in another cell) at once,
  so the ant never idles at its goal (an offline learner would otherwise see long stretches
  of standing still with reward 1, Minari issue 296);
- the step that reaches a goal ends a stored episode with a termination: its next
  observation is the real one, still holding the reached goal, and the next stored episode
  starts from the same state with the new goal. So every transition's goal is the goal of
  its reward, and a value learner does not bootstrap from one goal's task into the next's
  (D4RL marked the steps at its goal as terminals too). A stored episode thus ends in a
  termination (goal reached) or in the 1000-step timeout;
- the policy is the reacher's deterministic action towards the planner's next waypoint plus
  N(0, ``noise``^2) noise, clipped to [-1, 1].

Observations are the maze's dict observation flattened as ``observation`` (the ant's 27
numbers), ``achieved_goal`` (x-y), ``desired_goal`` (the current goal), contrl's default for
AntMaze. Resumable: episodes are made in chunks of ``num_envs``, each episode from its own
seed, and every finished chunk is saved (atomically) under ``<minari root>/.<name>.parts``;
running the same command again continues after the last saved chunk and ends with the same
dataset an uninterrupted run writes.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np

from contrl.data.collect import check_new
from contrl.data.datasets import load_dataset, minari_root, write_minari
from contrl.envs import make_env
from contrl.envs.antgoal import MAZE_OBS_KEYS, MazeDriver
from contrl.envs.maze import MazeGeometry
from contrl.envs.maze_planner import WaypointPlanner
from contrl.errors import ContrlError
from contrl.policy import Policy
from contrl.run import atomic_write, atomic_write_json

SUCCESS_DISTANCE = 0.45  # gymnasium-robotics' AntMaze success test


class MazeDataset(NamedTuple):
    env_id: str  # the env the data are collected in and evaluated on
    cells: str  # fixed | play | diverse
    start: tuple[int, int] | None = None  # fixed: the start and goal cells
    goal: tuple[int, int] | None = None


DATASETS = {
    "antmaze-umaze-v0": MazeDataset("AntMaze_UMaze_Fixed-v5", "fixed", (3, 1), (1, 1)),
    "antmaze-umaze-diverse-v0": MazeDataset("AntMaze_UMaze-v5", "diverse"),
    "antmaze-medium-play-v0": MazeDataset("AntMaze_Medium_Diverse_GR-v5", "play"),
    "antmaze-medium-diverse-v0": MazeDataset("AntMaze_Medium_Diverse_GR-v5", "diverse"),
    "antmaze-large-play-v0": MazeDataset("AntMaze_Large_Diverse_GR-v5", "play"),
    "antmaze-large-diverse-v0": MazeDataset("AntMaze_Large_Diverse_GR-v5", "diverse"),
}


def dataset_spec(name: str) -> MazeDataset:
    if name not in DATASETS:
        raise ContrlError(f"unknown maze dataset '{name}'; contrl makes "
                          f"{', '.join(DATASETS)}")
    return DATASETS[name]


def cell_sets(spec: MazeDataset, maze_map) -> tuple[list, list]:
    """(start cells, goal cells) a dataset draws from; a first goal is never the start's
    cell, a fresh goal never the reached one's (so ``fixed`` goes back and forth)."""
    if spec.cells == "fixed":
        return [spec.start], [spec.goal, spec.start]
    free = [(r, c) for r, row in enumerate(maze_map) for c, v in enumerate(row) if v != 1]
    if spec.cells == "diverse":
        return free, free
    picked = [(r, c) for r, c in free if maze_map[r][c] in ("c", "g", "r")]
    return picked, picked


def _draw(rng: np.random.Generator, cells: list, avoid=None) -> tuple[int, int]:
    options = [c for c in cells if c != avoid] or cells
    return tuple(int(v) for v in options[rng.integers(len(options))])


def _segment(obs: list, actions: list, rewards: list, terminated: bool) -> dict:
    n = len(rewards)
    return {"observations": np.asarray(obs, np.float32),
            "actions": np.asarray(actions, np.float32),
            "rewards": np.asarray(rewards, np.float32),
            "terminations": np.arange(1, n + 1) == n if terminated else np.zeros(n, bool),
            "truncations": np.zeros(n, bool) if terminated else np.arange(1, n + 1) == n}


class _Episode:
    """One collection episode: its env, random generator, the stored episodes it has closed
    (one per goal reached) and the arrays of the open one."""

    def __init__(self, env, index: int, seed: int, starts: list, goals: list):
        self.env, self.goals = env, goals
        self.rng = np.random.default_rng([seed, index])
        start = _draw(self.rng, starts)
        goal = _draw(self.rng, goals, avoid=start)
        obs, _ = env.reset(seed=int(self.rng.integers(2**31)),
                           options={"reset_cell": np.array(start), "goal_cell": np.array(goal)})
        self.closed: list[dict] = []
        self.obs, self.actions, self.rewards = [obs], [], []
        self.goal_cell = goal

    def step(self, action: np.ndarray) -> None:
        obs, reward, _, _, _ = self.env.step(action)
        self.actions.append(action)
        self.rewards.append(float(reward))
        self.obs.append(obs)
        if reward > 0:  # reached: close the stored episode, go on towards a fresh goal
            self.closed.append(_segment(self.obs, self.actions, self.rewards, terminated=True))
            maze = self.env.unwrapped
            self.goal_cell = _draw(self.rng, self.goals, avoid=self.goal_cell)
            maze.goal = maze.add_xy_position_noise(maze.maze.cell_rowcol_to_xy(
                np.array(self.goal_cell)))
            maze.update_target_site_pos()
            obs = obs.copy()
            obs[-2:] = maze.goal
            self.obs, self.actions, self.rewards = [obs], [], []

    def arrays(self) -> list[dict]:
        """The stored episodes: one per goal reached, then the rest up to the timeout."""
        rest = [_segment(self.obs, self.actions, self.rewards, terminated=False)]
        return self.closed + (rest if self.rewards else [])


def collect_chunk(driver: MazeDriver, spec: MazeDataset, first: int, count: int,
                  episode_steps: int, noise: float, seed: int) -> list[dict]:
    """Episodes ``first`` .. ``first + count - 1``, stepped in lockstep."""
    envs = [make_env(spec.env_id, obs_keys=MAZE_OBS_KEYS) for _ in range(count)]
    starts, goals = cell_sets(spec, envs[0].unwrapped.maze.maze_map)
    episodes = [_Episode(e, first + i, seed, starts, goals) for i, e in enumerate(envs)]
    carry = driver.initial_carry(count)
    for _ in range(episode_steps):
        obs = np.stack([ep.obs[-1] for ep in episodes])
        actions, carry = driver.eval_actions(obs, carry)
        actions = np.asarray(actions, np.float64)
        for ep, a in zip(episodes, actions):
            a = np.clip(a + noise * ep.rng.standard_normal(a.shape), -1.0, 1.0)
            ep.step(a.astype(np.float32))
    for e in envs:
        e.close()
    return [stored for ep in episodes for stored in ep.arrays()]


def _save_part(path: Path, episodes: list[dict]) -> None:
    arrays = {f"{i}/{k}": v for i, ep in enumerate(episodes) for k, v in ep.items()}
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _load_part(path: Path) -> list[dict]:
    with np.load(path) as z:
        n = len({k.split("/")[0] for k in z.files})
        return [{k: z[f"{i}/{k}"] for k in ("observations", "actions", "rewards",
                                            "terminations", "truncations")} for i in range(n)]


def make_maze_dataset(name: str, reacher: Policy, source: dict, steps: int = 1_000_000,
                      noise: float = 0.2, episode_steps: int = 1000, seed: int = 0,
                      num_envs: int = 8, stop=None) -> dict:
    """Write the AntMaze dataset ``name`` (one of ``DATASETS``) with the goal-reaching policy
    ``reacher`` (``source``: where it came from, for the metadata); see the module docstring.
    ``stop()``, if given, is asked after every chunk; a true answer returns early (resume by
    calling again)."""
    spec = dataset_spec(name)
    check_new(name)
    if steps <= 0 or episode_steps <= 0 or steps % episode_steps:
        raise ContrlError(f"steps ({steps}) must be a positive multiple of episode_steps "
                          f"({episode_steps})")
    if noise < 0:
        raise ContrlError(f"noise must be >= 0, got {noise}")
    if num_envs <= 0:
        raise ContrlError(f"num_envs must be positive, got {num_envs}")
    settings = {"dataset": name, "env_id": spec.env_id, "cells": spec.cells, "steps": steps,
                "episode_steps": episode_steps, "noise": noise, "seed": seed,
                "num_envs": num_envs, **source}
    parts = minari_root() / f".{name}.parts"
    parts.mkdir(parents=True, exist_ok=True)
    saved = parts / "settings.json"
    if saved.exists() and json.loads(saved.read_text()) != settings:
        raise ContrlError(f"{parts} holds a collection with other settings "
                          f"({saved}); remove it to start over")
    atomic_write_json(saved, settings)
    env = make_env(spec.env_id)
    geometry, maze_map = MazeGeometry.of_env(env), env.unwrapped.maze.maze_map
    env.close()
    driver = MazeDriver(reacher, WaypointPlanner(geometry))
    n_episodes = steps // episode_steps
    for first in range(0, n_episodes, num_envs):
        part = parts / f"part-{first:06d}.npz"
        if part.exists():
            continue
        count = min(num_envs, n_episodes - first)
        _save_part(part, collect_chunk(driver, spec, first, count, episode_steps, noise, seed))
        if stop is not None and stop():
            return {"name": name, "interrupted": True, "episodes_done": first + count}
    episodes = [ep for first in range(0, n_episodes, num_envs)
                for ep in _load_part(parts / f"part-{first:06d}.npz")]
    meta = _metadata(settings, episodes, *cell_sets(spec, maze_map))
    path = write_minari(name, episodes, spec.env_id, meta)
    load_dataset(path, spec.env_id)  # the flat copy that makes later loads fast
    shutil.rmtree(parts)
    return {"name": name, "path": str(path), "episodes": len(episodes), "steps": steps,
            "goals_reached": meta["goals_reached"]}


def _metadata(settings: dict, episodes: list[dict], starts: list, goals: list) -> dict:
    reached = int(sum(float(ep["rewards"].sum()) for ep in episodes))
    return {**settings, "obs_keys": list(MAZE_OBS_KEYS),
            "policy": f"goal reacher {settings.get('run', '')} + waypoint planner + "
                      f"N(0, {settings['noise']}^2) noise",
            "description": (
                f"{settings['cells']} starts and goals; {settings['episode_steps']}-step "
                f"collection episodes; reward 1 within {SUCCESS_DISTANCE} m of the goal, where "
                "the stored episode terminates and the next starts towards a fresh goal; the "
                "last one of each collection episode ends in a timeout"),
            "start_cells": [list(c) for c in starts], "goal_cells": [list(c) for c in goals],
            "goals_reached": reached,
            "average_return": float(np.mean([ep["rewards"].sum() for ep in episodes]))}
