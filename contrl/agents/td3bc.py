"""TD3+BC (Fujimoto and Gu 2021): TD3 whose actor also regresses onto dataset actions,

    loss = -lambda * Q_1(s, pi(s)) + mean (pi(s) - a)^2,   lambda = alpha / mean |Q_1(s, pi(s))|,

with observations standardized by the dataset's statistics. Everything else is TD3's.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from contrl.agents.offline import DataNormalized, DataStats, OfflineConfig
from contrl.agents.td3 import TD3, TD3Config
from contrl.data.batch import Batch


@dataclasses.dataclass
class TD3BCConfig(OfflineConfig, TD3Config):
    """TD3+BC hyperparameters (defaults: the paper's)."""

    alpha: float = 2.5
    """Weight of the Q term relative to the behaviour-cloning term (normalized by mean |Q|)."""
    weight_init: str = "torch"
    """Kernel initialization: torch (PyTorch's default, as in the paper's code) or lecun
    (Flax's)."""

    def validate(self) -> None:
        super().validate()
        self._positive("alpha")


def td3bc_actor_loss(q, pi, action, alpha: float):
    """-lambda * mean Q + mean squared error to dataset actions, lambda = alpha / mean |Q|
    (lambda is not differentiated)."""
    lam = alpha / jax.lax.stop_gradient(jnp.mean(jnp.abs(q)))
    return -lam * jnp.mean(q) + jnp.mean((pi - action) ** 2)


class TD3BC(DataNormalized, TD3):
    """TD3 with the BC-regularized actor and dataset statistics (``stats``)."""

    stats: DataStats = None
    alpha: float = struct.field(pytree_node=False, default=2.5)

    @classmethod
    def create(cls, cfg: TD3BCConfig, obs_dim: int, action_dim: int, seed: int,
               num_envs: int = 1) -> "TD3BC":
        agent = super().create(cfg, obs_dim, action_dim, seed)
        return agent.replace(stats=DataStats.identity(obs_dim), alpha=cfg.alpha)

    def actor_objective(self, q, pi, batch: Batch):
        return td3bc_actor_loss(q, pi, batch.action, self.alpha)

