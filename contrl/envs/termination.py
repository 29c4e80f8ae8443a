"""Known termination rules of environments, as functions of the observation, for model-based
agents whose imagined transitions must end where the real env would end them.

``termination_fn(env_id)`` returns ``done(next_obs) -> bool array`` (batched, jax-traceable),
or None where the env never terminates (HalfCheetah, Pendulum, the DeepMind Control Suite
but for lqr) or contrl does not know its rule (lqr among them: mopo refuses data with
terminations there). The rules read
Gymnasium's default observation layout (root x position excluded): obs[0] is the torso's
height, obs[1] its angle.
"""
from __future__ import annotations

import jax.numpy as jnp


def hopper_done(next_obs):
    """Gymnasium Hopper's health check: height > 0.7, |angle| < 0.2, every state entry
    (obs[1:]) inside (-100, 100), all finite."""
    height, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = (jnp.all(jnp.isfinite(next_obs), axis=-1)
               & jnp.all(jnp.abs(next_obs[..., 1:]) < 100.0, axis=-1)
               & (height > 0.7) & (jnp.abs(angle) < 0.2))
    return ~healthy


def walker2d_done(next_obs):
    """Gymnasium Walker2d's health check: 0.8 < height < 2.0 and -1 < angle < 1."""
    height, angle = next_obs[..., 0], next_obs[..., 1]
    healthy = (height > 0.8) & (height < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~healthy


def ant_done(next_obs):
    """Gymnasium Ant's health check: 0.2 <= height <= 1.0, all finite."""
    height = next_obs[..., 0]
    healthy = jnp.all(jnp.isfinite(next_obs), axis=-1) & (height >= 0.2) & (height <= 1.0)
    return ~healthy


def humanoid_done(next_obs):
    """Gymnasium Humanoid's health check: 1.0 < height < 2.0."""
    height = next_obs[..., 0]
    return ~((height > 1.0) & (height < 2.0))


def inverted_pendulum_done(next_obs):
    """Gymnasium InvertedPendulum's: the pole's angle (obs[1]) beyond 0.2, or a non-finite
    observation."""
    return ~(jnp.all(jnp.isfinite(next_obs), axis=-1) & (jnp.abs(next_obs[..., 1]) <= 0.2))


TERMINATIONS = {"Hopper-v4": hopper_done, "Hopper-v5": hopper_done,
                "Walker2d-v4": walker2d_done, "Walker2d-v5": walker2d_done,
                "Ant-v4": ant_done, "Ant-v5": ant_done,
                "Humanoid-v4": humanoid_done, "Humanoid-v5": humanoid_done,
                "InvertedPendulum-v4": inverted_pendulum_done,
                "InvertedPendulum-v5": inverted_pendulum_done}


def termination_fn(env_id: str):
    """The env's termination rule on (batched) next observations, or None (no terminations)."""
    return TERMINATIONS.get(env_id)
