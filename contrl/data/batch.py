"""The transition batch every update reads."""
from __future__ import annotations

from typing import NamedTuple

import jax


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
