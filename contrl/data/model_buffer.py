"""A replay buffer of model-generated transitions held in device arrays, so that writing
rollouts into it and sampling batches from it happen inside a compiled update.

It is a pytree (a ring of ``capacity`` transitions with a write pointer and a fill count):
``add`` writes the rows that ``keep`` marks, packed, after the newest ones; ``sample`` draws
uniformly among the rows written so far. Both are pure and traceable.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from contrl.data.batch import Batch


class ModelBuffer(struct.PyTreeNode):
    obs: jax.Array        # (capacity, obs_dim)
    action: jax.Array     # (capacity, action_dim)
    reward: jax.Array     # (capacity,)
    discount: jax.Array   # (capacity,) gamma * (1 - terminated)
    next_obs: jax.Array   # (capacity, obs_dim)
    ptr: jax.Array        # next row to write
    size: jax.Array       # rows written so far, at most capacity

    @classmethod
    def create(cls, capacity: int, obs_dim: int, action_dim: int) -> "ModelBuffer":
        z = jnp.zeros
        return cls(z((capacity, obs_dim), jnp.float32), z((capacity, action_dim), jnp.float32),
                   z(capacity, jnp.float32), z(capacity, jnp.float32),
                   z((capacity, obs_dim), jnp.float32), z((), jnp.int32), z((), jnp.int32))

    @property
    def capacity(self) -> int:
        return self.reward.shape[0]

    def add(self, batch: Batch, keep: jax.Array) -> "ModelBuffer":
        """Write the rows of ``batch`` (no K axis) where ``keep`` is true, oldest rows first
        overwritten; the others are dropped."""
        n = jnp.sum(keep, dtype=jnp.int32)
        order = jnp.argsort(~keep, stable=True)  # kept rows first, in order
        j = jnp.arange(keep.shape[0])
        rows = jnp.where(j < n, (self.ptr + j) % self.capacity, self.capacity)  # past the end: dropped

        def put(dst, src):
            return dst.at[rows].set(src[order], mode="drop")

        return self.replace(obs=put(self.obs, batch.obs), action=put(self.action, batch.action),
                            reward=put(self.reward, batch.reward),
                            discount=put(self.discount, batch.discount),
                            next_obs=put(self.next_obs, batch.next_obs),
                            ptr=(self.ptr + n) % self.capacity,
                            size=jnp.minimum(self.size + n, self.capacity))

    def sample(self, key: jax.Array, n: int) -> Batch:
        """``n`` transitions drawn uniformly among those written (the buffer must not be empty)."""
        i = jax.random.randint(key, (n,), 0, jnp.maximum(self.size, 1))
        return Batch(self.obs[i], self.action[i], self.reward[i], self.discount[i],
                     self.next_obs[i])

    def state(self, prefix: str = "model_buffer/") -> dict:
        """The buffer as named numpy arrays (for a checkpoint), only the rows written."""
        size = int(self.size)
        out = {f"{prefix}{k}": np.asarray(getattr(self, k)[:size])
               for k in ("obs", "action", "reward", "discount", "next_obs")}
        out[f"{prefix}ptr"] = np.asarray(self.ptr)
        return out

    def load_state(self, arrays: dict, prefix: str = "model_buffer/") -> "ModelBuffer":
        """This (empty) buffer filled with what ``state`` saved."""
        size = len(arrays[f"{prefix}reward"])
        fields = {k: getattr(self, k).at[:size].set(arrays[f"{prefix}{k}"])
                  for k in ("obs", "action", "reward", "discount", "next_obs")}
        return self.replace(**fields, ptr=jnp.asarray(arrays[f"{prefix}ptr"], jnp.int32),
                            size=jnp.asarray(size, jnp.int32))
