"""What every agent shares: the batch layout and the training-state helper."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState


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


_BUILDERS: dict = {}


def compiled_create(build, cfg, obs_dim: int, action_dim: int, seed: int):
    """``build(cfg, obs_dim, action_dim, seed)`` as one compiled call, compiled once per
    (builder, config, shapes); run op by op, network and optimizer init would compile dozens
    of tiny programs on every agent creation."""
    key = (build, repr(cfg), obs_dim, action_dim)
    if key not in _BUILDERS:
        _BUILDERS[key] = jax.jit(lambda s: build(cfg, obs_dim, action_dim, s))
    return _BUILDERS[key](jnp.asarray(seed, jnp.uint32))


def make_state(module, params, lr: float, grad_clip: float | None = None) -> TrainState:
    tx = optax.adam(lr)
    if grad_clip:
        tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
    apply_fn = module.apply if module is not None else None
    return TrainState.create(apply_fn=apply_fn, params=params, tx=tx)


def td_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """0.5 * mean squared TD error, summed over the critic ensemble axis (q: (n, B))."""
    return 0.5 * jnp.sum(jnp.mean((q - target) ** 2, axis=-1))


def scan_updates(step_fn, agent, batches: Batch):
    """Run ``step_fn(agent, batch) -> (agent, metrics)`` over the K leading slices of
    ``batches`` in one compiled loop; returns the final agent and the metrics of the last step."""
    agent, metrics = jax.lax.scan(step_fn, agent, batches)
    return agent, jax.tree_util.tree_map(lambda m: m[-1], metrics)
