"""Deterministic evaluation episodes on env instances separate from training."""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from contrl.envs import EnvPool
from contrl.envs.maze import MazeGeometry, agent_xy, goal_xy, is_maze, turned_over
from contrl.policy import Policy

def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sensible at 0 and n successes)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class MazeTrace(NamedTuple):
    """Where a maze evaluation's episodes went: each one's x-y path (start included), goal
    and outcome, with the maze's walls; for the picture (``contrl.maze_picture``)."""

    geometry: MazeGeometry
    paths: list[np.ndarray]  # per episode, (length + 1, 2)
    goals: np.ndarray  # (episodes, 2)
    successes: np.ndarray  # (episodes,) bool
    turned_over_at: np.ndarray | None = None  # (episodes,) first step on its back (-1: never); None: no ant


EVAL_CHUNK = 100  # episodes stepped in lockstep at most (a larger evaluation runs in chunks)


def evaluate(policy: Policy, env_id: str, episodes: int, seed: int, trace: bool = False,
             on_chunk=None, **env_kwargs) -> dict:
    """Run ``episodes`` episodes in lockstep (one env each, so the policy is called once per
    step for all of them; more than ``EVAL_CHUNK`` run that many at a time), carrying the
    policy's state through each episode. Episode ``i``'s env is seeded ``seed + i``: a run
    passes its ``eval_envs`` stream seed (``contrl.seeding``), so every evaluation of a run
    sees the same start states. When the env reports success, the result has
    ``success_rate`` (an episode
    succeeds if it reached the goal at any step) with its 95% interval, and the steps each
    successful episode took to first reach its goal (``steps_to_goal``, None for a failure;
    ``mean_steps_to_goal`` over the successes). On an AntMaze it also has ``turned_over_rate``,
    the share of episodes in which the ant turned over (its torso's up axis below the
    horizon: it cannot get up again), and ``turned_over_failures``, that share among the
    failures. ``trace`` on a maze: the result's ``trace``
    is a ``MazeTrace`` (the agent's x-y at every step; not JSON, pop it before writing).
    ``on_chunk(done, episodes)`` is called after each chunk (a progress bar).
    ``env_kwargs``: how the env is made (``contrl.envs.make_env``'s keyword arguments, as in
    training)."""
    chunks = []
    for first in range(0, episodes, EVAL_CHUNK):
        n = min(EVAL_CHUNK, episodes - first)
        chunks.append(_run_episodes(policy, env_id, n, seed + first, trace,
                                    env_kwargs))
        if on_chunk is not None:
            on_chunk(first + n, episodes)
    returns, lengths, first_success, success, turned_at = (
        np.concatenate([c[k] for c in chunks])
        for k in ("returns", "lengths", "first_success", "success", "turned_at"))
    ant = env_id.startswith("AntMaze_")
    result = {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "episodes": episodes,
        "mean_length": float(lengths.mean()),
        "returns": [float(r) for r in returns],
    }
    if any(c["reports_success"] for c in chunks):
        result["success_rate"] = float(success.mean())
        result["success_interval"] = list(wilson_interval(int(success.sum()), episodes))
        result["successes"] = [bool(s) for s in success]
        reached = first_success[first_success >= 0]
        result["mean_steps_to_goal"] = float(reached.mean()) if reached.size else None
        result["steps_to_goal"] = [int(n) if n >= 0 else None for n in first_success]
    if ant:
        turned = turned_at >= 0
        result["turned_over_rate"] = float(turned.mean())
        result["turned_over_failures"] = (float(turned[~success].mean()) if (~success).any()
                                          else None)
    if chunks[0]["paths"] is not None:
        result["trace"] = MazeTrace(chunks[0]["geometry"], [p for c in chunks for p in c["paths"]],
                                    np.concatenate([c["goals"] for c in chunks]), success.copy(),
                                    turned_at.copy() if ant else None)
    return result


def _run_episodes(policy: Policy, env_id: str, episodes: int, seed: int, trace: bool,
                  env_kwargs: dict) -> dict:
    """``episodes`` episodes in lockstep, the ``i``-th seeded ``seed + i``: per-episode arrays
    (return, length, first step at the goal, success, first step turned over) and, with
    ``trace`` on a maze, the paths, goals and the maze's geometry."""
    pool = EnvPool(env_id, episodes, seed, **env_kwargs)
    obs = pool.obs.copy()
    carry = policy.initial_carry(episodes)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, np.int64)
    first_success = np.full(episodes, -1, np.int64)
    active = np.ones(episodes, bool)
    paths = [[agent_xy(e)] for e in pool.envs] if trace and is_maze(env_id) else None
    ant = env_id.startswith("AntMaze_")
    turned_at = np.full(episodes, -1, np.int64)
    while active.any():
        actions, carry = policy.eval_actions(obs, carry)
        actions = np.asarray(actions)
        for i in np.flatnonzero(active):
            o, r, term, trunc, info = pool.envs[i].step(actions[i])
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            if paths is not None:
                paths[i].append(agent_xy(pool.envs[i]))
            if pool.record_success(i, info) and first_success[i] < 0:
                first_success[i] = lengths[i]
            if ant and turned_at[i] < 0 and turned_over(pool.envs[i]):
                turned_at[i] = lengths[i]
            active[i] = not (term or trunc)
    out = {"returns": returns, "lengths": lengths, "first_success": first_success,
           "success": pool.episode_success.copy(), "turned_at": turned_at,
           "reports_success": pool.reports_success, "paths": None}
    if paths is not None:
        out.update(paths=[np.array(p) for p in paths],
                   goals=np.array([goal_xy(e) for e in pool.envs]),
                   geometry=MazeGeometry.of_env(pool.envs[0]))
    pool.close()
    return out
