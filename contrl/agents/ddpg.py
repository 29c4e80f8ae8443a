"""DDPG (Lillicrap et al. 2016) as in the TD3 paper's "our DDPG": one critic, a deterministic
actor, Gaussian exploration noise, actor and targets updated every step (CleanRL's DDPG
updates them every second step).

It shares TD3's agent: only the defaults differ (one critic, no target smoothing, no delay).
"""
from __future__ import annotations

import dataclasses

from contrl.agents.td3 import TD3, TD3Config


@dataclasses.dataclass
class DDPGConfig(TD3Config):
    """DDPG hyperparameters."""

    n_critics: int = 1
    """Critics in the ensemble (DDPG: one)."""
    policy_noise: float = 0.0
    """Std of the target policy smoothing noise (DDPG: none)."""
    policy_delay: int = 1
    """Critic updates per actor (and target network) update (DDPG: every step)."""


DDPG = TD3
