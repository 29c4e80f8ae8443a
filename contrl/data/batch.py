"""The transition batch every update reads."""
from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np


class Batch(NamedTuple):
    """Transitions; with a leading K axis when passed to a K-step update.

    ``discount`` is the bootstrap multiplier: gamma**n * (1 - terminated). It is 0 after a
    true termination and gamma**n after a time-limit truncation or mid-episode.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array


class SequenceBatch(NamedTuple):
    """Windows of consecutive transitions of one episode each, time-major; with a leading K
    axis when passed to a K-step update. For W steps and n windows:

    - ``obs`` (W + 1, n, d): o_0 .. o_W (o_{t+1} is the next observation of step t);
    - ``action`` (W, n, a), ``reward`` (W, n), ``discount`` (W, n): gamma * (1 - terminated);
    - ``mask`` (W, n): 1 where step t is a transition of the window's episode that the loss
      counts (not padding past the episode's end, not burn-in);
    - ``stop`` (W + 1, n): where the recurrent state entering o_t is detached from the
      gradient (the end of a burn-in).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    mask: jax.Array
    stop: jax.Array


def concat(parts):
    """Batches of one kind (K-stacked, as an update takes them) joined along their batch axis:
    axis 1 of transitions (K, B, ...), axis 2 of windows (K, T, n, ...)."""
    axis = 2 if isinstance(parts[0], SequenceBatch) else 1
    return type(parts[0])(*(np.concatenate(xs, axis=axis) for xs in zip(*parts)))
