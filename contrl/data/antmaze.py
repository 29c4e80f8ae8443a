"""D4RL-style AntMaze datasets made by contrl: a goal-reaching ant (trained on ``AntGoal-v2``,
or ``AntGoal-v3`` for the ``-v1`` datasets, whose mazes have D4RL's ant) driven through a maze
by the waypoint planner, with Gaussian action noise.

How (as D4RL made its antmaze datasets, with what differs said):

- every collection episode lasts ``episode_steps`` (1000) steps; its last stored episode ends
  with a truncation (a timeout);
- the ant is sent to goals drawn from a set of cells: ``fixed`` (umaze) back and forth
  between D4RL's start and goal cells; ``play``: a hand-picked set, here gymnasium-robotics'
  own goal/reset cells of the ``Diverse_GR`` maps (marked ``c``) and the evaluation goal's
  cell; ``diverse``: any free cell. Starts come from the same set; positions get the env's own
  noise within the cell. ``d4rl_play`` (the ``-v2`` play datasets) is play as D4RL's script
  made it: goals only D4RL's goal cells (``g`` in its maps: the marked cells but its start
  cell; on the medium maze not the evaluation goal's cell), starts every other free cell;
- when the ant reaches the goal it was sent to, a fresh one is drawn (in another cell) at once,
  so the ant never idles at a goal (an offline learner would otherwise see long stretches of
  standing still with reward 1, Minari issue 296);
- rewards, as D4RL's: single-task datasets (the D4RL names) reward every transition for the
  evaluation task's goal (the ``_Fixed`` maze's goal cell; one point per start, drawn as the
  eval env draws it and stored as the observation's goal), whichever goal the ant was sent
  to; ``-multigoal`` datasets reward each transition for the goal the ant was sent to
  (goal-conditioned). Either way 1 at a step ending within 0.45 m of the goal, else 0;
- a rewarded step ends its stored episode with a termination (the real next observation) and
  the next stored episode starts from the same state, so a value learner does not bootstrap
  through a reached goal (D4RL marked the steps at its goal as terminals too);
- an ant that turns over (on its back it can never walk again) is kept on its back for
  ``TURNED_OVER_STEPS`` (50) steps, then its stored episode ends with a truncation and it
  starts afresh from a new start within the same collection episode (D4RL kept such
  stretches whole; with contrl's reacher a quarter of the steps were an ant on its back). Cut
  at the turn itself, the data held an ant on its back only as a last next observation, far
  outside the data (the orientation's spread was then tiny), and IQL's values diverged;
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

from contrl.config import check_seed
from contrl.data.collect import check_new, check_noise
from contrl.data.datasets import load_dataset, minari_root, write_minari
from contrl.envs import make_env
from contrl.envs.antgoal import MAZE_OBS_KEYS, MazeDriver
from contrl.envs.make import FIXED_MAZES
from contrl.envs.maze import MazeGeometry, turned_over
from contrl.envs.maze_planner import WaypointPlanner
from contrl.errors import ContrlError
from contrl.policy import Policy, reset_carry
from contrl.run import atomic_write, atomic_write_json

SUCCESS_DISTANCE = 0.45  # gymnasium-robotics' AntMaze success test
# steps kept after the ant turns over, before it starts afresh: the states of an ant on its back
# must be in the data (as observations, not only as the last next observation, whose value a
# learner would then only extrapolate: IQL's values diverged on data cut at the turn)
TURNED_OVER_STEPS = 50


class MazeDataset(NamedTuple):
    env_id: str  # the env the data are evaluated on
    cells: str  # fixed | play | d4rl_play | diverse: where collection starts and goals are drawn
    single_task: bool = True  # rewards for the eval goal (the _Fixed maze's goal cell)

    @property
    def start(self) -> tuple[int, int]:
        """``fixed``: the start cell, the _Fixed maze's."""
        return FIXED_MAZES[self.env_id][1]

    @property
    def goal(self) -> tuple[int, int]:
        """``fixed``: the other cell the ant is sent to and back, the _Fixed maze's goal."""
        return FIXED_MAZES[self.env_id][2]

    @property
    def target(self) -> tuple[int, int] | None:
        """The cell of the goal every transition is rewarded for (None: goal-conditioned)."""
        return self.goal if self.single_task else None


# The D4RL names are single-task: evaluated on the ``_Fixed`` mazes (D4RL's start and goal
# cells), every transition rewarded for that goal. ``-multigoal`` ones are goal-conditioned:
# each transition is rewarded for the goal the ant was sent to (contrl's first datasets).
DATASETS = {
    "antmaze-umaze-v0": MazeDataset("AntMaze_UMaze_Fixed-v5", "fixed"),
    "antmaze-umaze-diverse-v0": MazeDataset("AntMaze_UMaze_Fixed-v5", "diverse"),
    "antmaze-medium-play-v0": MazeDataset("AntMaze_Medium_Fixed-v5", "play"),
    "antmaze-medium-diverse-v0": MazeDataset("AntMaze_Medium_Fixed-v5", "diverse"),
    "antmaze-large-play-v0": MazeDataset("AntMaze_Large_Fixed-v5", "play"),
    "antmaze-large-diverse-v0": MazeDataset("AntMaze_Large_Fixed-v5", "diverse"),
    "antmaze-umaze-multigoal-v0": MazeDataset("AntMaze_UMaze_Fixed-v5", "fixed", False),
    "antmaze-medium-play-multigoal-v0": MazeDataset("AntMaze_Medium_Diverse_GR-v5", "play",
                                                    False),
    "antmaze-medium-diverse-multigoal-v0": MazeDataset("AntMaze_Medium_Diverse_GR-v5",
                                                       "diverse", False),
    # v1: the same tasks with D4RL's ant (the _D4RL mazes; made with an AntGoal-v3 reacher)
    "antmaze-umaze-v1": MazeDataset("AntMaze_UMaze_D4RL-v5", "fixed"),
    "antmaze-umaze-diverse-v1": MazeDataset("AntMaze_UMaze_D4RL-v5", "diverse"),
    "antmaze-medium-play-v1": MazeDataset("AntMaze_Medium_D4RL-v5", "play"),
    "antmaze-medium-diverse-v1": MazeDataset("AntMaze_Medium_D4RL-v5", "diverse"),
    "antmaze-large-play-v1": MazeDataset("AntMaze_Large_D4RL-v5", "play"),
    "antmaze-large-diverse-v1": MazeDataset("AntMaze_Large_D4RL-v5", "diverse"),
    # v2: v1 with play's cells as D4RL's generation script drew them (``d4rl_play``)
    "antmaze-medium-play-v2": MazeDataset("AntMaze_Medium_D4RL-v5", "d4rl_play"),
    "antmaze-large-play-v2": MazeDataset("AntMaze_Large_D4RL-v5", "d4rl_play"),
}


def dataset_spec(name: str) -> MazeDataset:
    if name not in DATASETS:
        raise ContrlError(f"unknown maze dataset '{name}'; contrl makes "
                          f"{', '.join(DATASETS)} (other datasets: `contrl collect`)")
    return DATASETS[name]


def cell_sets(spec: MazeDataset, maze_map) -> tuple[list, list]:
    """(start cells, goal cells) a collection draws from; a first goal is never the start's
    cell, a fresh goal never the reached one's (so ``fixed`` goes back and forth). ``play``:
    the map's marked cells (``c`` in gymnasium-robotics' ``Diverse_GR`` maps) and the target."""
    if spec.cells == "fixed":
        return [spec.start], [spec.goal, spec.start]
    free = [(r, c) for r, row in enumerate(maze_map) for c, v in enumerate(row) if v != 1]
    if spec.cells == "diverse":
        return free, free
    # a _Fixed map marks only its start and goal: the hand-picked cells are Diverse_GR's
    marked = (maze_map if any(maze_map[r][c] == "c" for r, c in free)
              else _diverse_gr_map(len(maze_map)))
    if spec.cells == "d4rl_play":  # Diverse_GR's cells are D4RL's goal cells and its start
        goals = [(r, c) for r, c in free
                 if marked[r][c] in ("c", "g") and (r, c) != spec.start]
        return [cell for cell in free if cell not in goals], goals
    picked = [(r, c) for r, c in free
              if marked[r][c] in ("c", "g", "r") or (r, c) == spec.target]
    return picked, picked


def _diverse_gr_map(rows: int) -> list:
    from gymnasium_robotics.envs.maze import maps
    return {8: maps.MEDIUM_MAZE_DIVERSE_GR, 9: maps.LARGE_MAZE_DIVERSE_GR}[rows]


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
    and the arrays of the open one.

    The ant is sent to a goal point (the env's ``goal``); reaching it draws a fresh one at once.
    Without a target, a stored transition's goal and reward are that point's; with one
    (``spec.target``), each (re)start draws an evaluation goal in the target cell as the eval
    env does, stores it as every observation's goal and rewards reaching it (the ant is sent
    exactly there whenever its goal cell is the target). A reward of 1 ends the stored episode
    with a termination; the next starts from the same state. ``restart_turned_over``: an ant
    on its back for ``TURNED_OVER_STEPS`` steps ends its stored episode with a truncation and
    starts afresh (new start and goal) within the same collection episode."""

    def __init__(self, env, index: int, seed: int, starts: list, goals: list,
                 target: tuple[int, int] | None = None, restart_turned_over: bool = False):
        self.env, self.starts, self.goals, self.target = env, starts, goals, target
        self.restart_turned_over = restart_turned_over
        self.rng = np.random.default_rng([seed, index])
        self.closed: list[dict] = []
        self.restarts = 0
        self._begin()

    def _point(self, cell) -> np.ndarray:
        maze = self.env.unwrapped
        return maze.add_xy_position_noise(maze.maze.cell_rowcol_to_xy(np.array(cell)))

    def _send(self, obs: np.ndarray, cell) -> np.ndarray:
        """Send the ant to a point of ``cell``; ``obs`` with that goal (the driver's view)."""
        maze = self.env.unwrapped
        self.goal_cell = cell
        maze.goal = self.eval_goal.copy() if cell == self.target else self._point(cell)
        maze.update_target_site_pos()
        obs = obs.copy()
        obs[-2:] = maze.goal
        return obs

    def _stored(self, obs: np.ndarray) -> np.ndarray:
        if self.target is None:
            return obs
        obs = obs.copy()
        obs[-2:] = self.eval_goal
        return obs

    def _begin(self) -> None:
        start = _draw(self.rng, self.starts)
        goal = _draw(self.rng, self.goals, avoid=start)
        obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)),
                                options={"reset_cell": np.array(start),
                                         "goal_cell": np.array(goal)})
        if self.target is not None:
            self.eval_goal = self._point(self.target)
        self.drive_obs = self._send(obs, goal)
        self.obs, self.actions, self.rewards = [self._stored(self.drive_obs)], [], []
        self.turned_over_for = 0  # steps since the ant turned over

    def _close(self, terminated: bool) -> None:
        if self.rewards:
            self.closed.append(_segment(self.obs, self.actions, self.rewards, terminated))

    def step(self, action: np.ndarray) -> bool:
        """One step of the reacher's action; True where the ant was restarted (a recurrent
        reacher's memory then starts afresh)."""
        obs, sent_reached, _, _, _ = self.env.step(action)
        if self.target is None:
            reward = float(sent_reached)
        else:
            reward = float(np.linalg.norm(obs[-4:-2] - self.eval_goal) <= SUCCESS_DISTANCE)
        self.actions.append(action)
        self.rewards.append(reward)
        self.obs.append(self._stored(obs))
        if sent_reached > 0:  # go on towards a fresh goal at once: no idling at the goal
            obs = self._send(obs, _draw(self.rng, self.goals, avoid=self.goal_cell))
        self.drive_obs = obs
        if reward > 0:
            self._close(terminated=True)
            self.obs, self.actions, self.rewards = [self._stored(obs)], [], []
        if self.restart_turned_over:
            if self.turned_over_for or turned_over(self.env):
                self.turned_over_for += 1
            if self.turned_over_for > TURNED_OVER_STEPS:
                self._close(terminated=False)
                self.restarts += 1
                self._begin()
                return True
        return False

    def arrays(self) -> list[dict]:
        """The stored episodes: closed ones, then the open one up to the timeout."""
        rest = [_segment(self.obs, self.actions, self.rewards, terminated=False)]
        return self.closed + (rest if self.rewards else [])


def collect_chunk(driver: MazeDriver, spec: MazeDataset, first: int, count: int,
                  episode_steps: int, noise: float, seed: int,
                  restart_turned_over: bool = True) -> list[dict]:
    """Episodes ``first`` .. ``first + count - 1``, stepped in lockstep."""
    envs = [make_env(spec.env_id, obs_keys=MAZE_OBS_KEYS) for _ in range(count)]
    starts, goals = cell_sets(spec, envs[0].unwrapped.maze.maze_map)
    episodes = [_Episode(e, first + i, seed, starts, goals, spec.target, restart_turned_over)
                for i, e in enumerate(envs)]
    carry = driver.initial_carry(count)
    for _ in range(episode_steps):
        obs = np.stack([ep.drive_obs for ep in episodes])
        actions, carry = driver.eval_actions(obs, carry)
        actions = np.asarray(actions, np.float64)
        restarted = [ep.step(np.clip(a + noise * ep.rng.standard_normal(a.shape), -1.0, 1.0)
                             .astype(np.float32)) for ep, a in zip(episodes, actions)]
        carry = reset_carry(driver, carry, restarted)
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


def check_collection(steps: int, noise: float, episode_steps: int, seed: int,
                     num_envs: int) -> None:
    """Refuse collection settings that cannot work (cheap: called before a reacher loads)."""
    if episode_steps <= 0:
        raise ContrlError(f"episode_steps must be positive, got {episode_steps}")
    check_seed(seed)
    if steps <= 0 or steps % episode_steps:
        raise ContrlError(f"steps ({steps}) must be a positive multiple of episode_steps "
                          f"({episode_steps})")
    check_noise(noise)
    if num_envs <= 0:
        raise ContrlError(f"num_envs must be positive, got {num_envs}")


def make_maze_dataset(name: str, reacher: Policy, source: dict, steps: int = 1_000_000,
                      noise: float = 0.2, episode_steps: int = 1000, seed: int = 0,
                      num_envs: int = 8, restart_turned_over: bool = True, stop=None,
                      on_progress=None) -> dict:
    """Write the AntMaze dataset ``name`` (one of ``DATASETS``) with the goal-reaching policy
    ``reacher`` (``source``: where it came from, for the metadata); see the module docstring.
    ``restart_turned_over``: an ant on its back starts afresh (see ``_Episode``).
    ``stop()``, if given, is asked after every chunk; a true answer returns early (resume by
    calling again). ``on_progress(episodes_done, episodes)`` is called after every chunk."""
    spec = dataset_spec(name)
    check_new(name)
    check_collection(steps, noise, episode_steps, seed, num_envs)  # before any part is written
    settings = {"dataset": name, "env_id": spec.env_id, "cells": spec.cells, "steps": steps,
                "episode_steps": episode_steps, "noise": noise, "seed": seed,
                "num_envs": num_envs, "restart_turned_over": restart_turned_over,
                "turned_over_steps": TURNED_OVER_STEPS if restart_turned_over else None,
                "target_cell": list(spec.target) if spec.target else None, **source}
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
        _save_part(part, collect_chunk(driver, spec, first, count, episode_steps, noise, seed,
                                       restart_turned_over))
        if on_progress is not None:
            on_progress(first + count, n_episodes)
        if stop is not None and stop():
            return {"name": name, "interrupted": True, "episodes_done": first + count}
    episodes = [ep for first in range(0, n_episodes, num_envs)
                for ep in _load_part(parts / f"part-{first:06d}.npz")]
    meta = _metadata(settings, episodes, *cell_sets(spec, maze_map))
    meta["cut_episodes"] = []  # every episode ends by the env, a goal or a restart (for concat)
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
                f"{settings['cells']} starts and goals the ant is sent to; "
                f"{settings['episode_steps']}-step collection episodes; "
                + (f"every transition rewarded for the evaluation goal of cell "
                   f"{settings['target_cell']} (one point per start, drawn as the eval env "
                   "draws it, stored as the observation's goal)"
                   if settings.get("target_cell") else
                   "each transition rewarded for the goal the ant is sent to")
                + f": reward 1 within {SUCCESS_DISTANCE} m, where the stored episode "
                "terminates and the next starts from the same state; a reached goal is "
                "replaced at once; "
                + (f"an ant on its back for {TURNED_OVER_STEPS} steps ends its stored episode "
                   "(truncation) and starts afresh; " if settings.get("restart_turned_over")
                   else "")
                + "the last stored episode of each collection episode ends in a timeout"),
            "start_cells": [list(c) for c in starts], "goal_cells": [list(c) for c in goals],
            "goals_reached": reached,
            "average_return": float(np.mean([ep["rewards"].sum() for ep in episodes]))}
