"""Deterministic evaluation episodes on env instances separate from training."""
from __future__ import annotations

from typing import Callable

import numpy as np

from contrl.envs import EnvPool

EVAL_SEED_OFFSET = 100_000


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env_id: str, episodes: int,
             seed: int, action_repeat: int = 1) -> dict:
    """Run ``episodes`` episodes in lockstep (one env each, so the policy is called once per
    step for all of them). Episode ``i`` is seeded ``seed + EVAL_SEED_OFFSET + i``, so every
    evaluation of a run sees the same start states."""
    pool = EnvPool(env_id, episodes, seed + EVAL_SEED_OFFSET, action_repeat)
    obs = pool.obs.copy()
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, np.int64)
    active = np.ones(episodes, bool)
    while active.any():
        actions = np.asarray(policy(obs))
        for i in np.flatnonzero(active):
            o, r, term, trunc, _ = pool.envs[i].step(actions[i])
            obs[i] = o
            returns[i] += r
            lengths[i] += 1
            active[i] = not (term or trunc)
    pool.close()
    return {
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "episodes": episodes,
        "mean_length": float(lengths.mean()),
        "returns": [float(r) for r in returns],
    }
