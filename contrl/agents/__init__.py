"""Algorithms. Each module defines a config dataclass and an immutable agent pytree.

The registry maps an algorithm name to ``(ConfigClass, AgentClass, loop_kind)``.
"""
from __future__ import annotations

from contrl.agents.ddpg import DDPG, DDPGConfig
from contrl.agents.sac import SAC, SACConfig
from contrl.agents.td3 import TD3, TD3Config

REGISTRY = {
    "sac": (SACConfig, SAC, "offpolicy"),
    "td3": (TD3Config, TD3, "offpolicy"),
    "ddpg": (DDPGConfig, DDPG, "offpolicy"),
}

__all__ = ["REGISTRY", "DDPG", "DDPGConfig", "SAC", "SACConfig", "TD3", "TD3Config"]
