"""Deterministic evaluation episodes on env instances separate from training."""
from __future__ import annotations

import math

import numpy as np

from contrl.envs import EnvPool
from contrl.policy import Policy

EVAL_SEED_OFFSET = 100_000


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial proportion (sensible at 0 and n successes)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate(policy: Policy, env_id: str, episodes: int, seed: int, **env_kwargs) -> dict:
    """Run ``episodes`` episodes in lockstep (one env each, so the policy is called once per
    step for all of them), carrying the policy's state through each episode. Episode ``i`` is
    seeded ``seed + EVAL_SEED_OFFSET + i``, so every evaluation of a run sees the same start
    states. When the env reports success, the result has ``success_rate`` (an episode
    succeeds if it reached the goal at any step) with its 95% interval. ``env_kwargs``: how
    the env is made (``contrl.envs.make_env``'s keyword arguments, as in training)."""
    pool = EnvPool(env_id, episodes, seed + EVAL_SEED_OFFSET, **env_kwargs)
    obs = pool.obs.copy()
    carry = policy.initial_carry(episodes)
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, np.int64)
    active = np.ones(episodes, bool)
    while active.any():
        actions, carry = policy.eval_actions(obs, carry)
        actions = np.asarray(actions)
        for i in np.flatnonzero(active):
            o, r, term, trunc, info = pool.envs[i].step(actions[i])
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            pool.record_success(i, info)
            active[i] = not (term or trunc)
    pool.close()
    success = pool.episode_success
    result = {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "episodes": episodes,
        "mean_length": float(lengths.mean()),
        "returns": [float(r) for r in returns],
    }
    if pool.reports_success:
        result["success_rate"] = float(success.mean())
        result["success_interval"] = list(wilson_interval(int(success.sum()), episodes))
        result["successes"] = [bool(s) for s in success]
    return result
