"""Running mean and variance, as an immutable pytree that lives inside an agent (so it is
saved in every checkpoint and used, frozen, at evaluation)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


class RunningStats(struct.PyTreeNode):
    """Mean and variance of everything seen so far, merged batch by batch (Chan et al.)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...] = ()) -> "RunningStats":
        # a tiny prior count keeps the first merge well defined (mean 0, variance 1)
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32),
                   jnp.asarray(1e-4, jnp.float32))

    def update(self, x: jax.Array) -> "RunningStats":
        """Merge a batch; ``x`` has the batch on its leading axes and the stats' shape after."""
        x = x.reshape((-1,) + self.mean.shape)
        n = x.shape[0]
        mean, var = x.mean(0), x.var(0)
        total = self.count + n
        delta = mean - self.mean
        new_mean = self.mean + delta * n / total
        m2 = self.var * self.count + var * n + delta**2 * self.count * n / total
        return RunningStats(new_mean, m2 / total, total)

    def normalize(self, x: jax.Array, clip: float) -> jax.Array:
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + 1e-8), -clip, clip)


def update_return_stats(stats: RunningStats, returns: jax.Array, rewards: jax.Array,
                        dones: jax.Array, gamma: float):
    """Reward scaling as in SB3's VecNormalize: track the variance of each env's running
    discounted return ``R <- gamma * R + r`` (reset at episode ends). ``rewards``/``dones``
    are (T, N); ``returns`` is the (N,) running return carried from the previous rollout."""

    def step(carry, x):
        stats, ret = carry
        r, d = x
        ret = gamma * ret + r
        return (stats.update(ret), ret * (1.0 - d)), None

    (stats, returns), _ = jax.lax.scan(step, (stats, returns), (rewards, dones))
    return stats, returns
