"""Algorithms. Each module defines a config dataclass and an immutable agent pytree.

The registry maps an algorithm name to ``(ConfigClass, AgentClass, loop_kind)``.
"""
from __future__ import annotations

from contrl.agents.a2c import A2C, A2CConfig
from contrl.agents.bc import BC, BCConfig
from contrl.agents.cql import CQL, CQLConfig
from contrl.agents.dagger import DAggerConfig
from contrl.agents.ddpg import DDPG, DDPGConfig
from contrl.agents.iql import IQL, IQLConfig
from contrl.agents.ppo import PPO, PPOConfig
from contrl.agents.sac import SAC, SACConfig
from contrl.agents.td3 import TD3, TD3Config
from contrl.agents.td3bc import TD3BC, TD3BCConfig

REGISTRY = {
    "sac": (SACConfig, SAC, "offpolicy"),
    "td3": (TD3Config, TD3, "offpolicy"),
    "ddpg": (DDPGConfig, DDPG, "offpolicy"),
    "ppo": (PPOConfig, PPO, "onpolicy"),
    "a2c": (A2CConfig, A2C, "onpolicy"),
    "bc": (BCConfig, BC, "offline"),
    "dagger": (DAggerConfig, BC, "dagger"),
    "iql": (IQLConfig, IQL, "offline"),
    "cql": (CQLConfig, CQL, "offline"),
    "td3bc": (TD3BCConfig, TD3BC, "offline"),
}

__all__ = ["REGISTRY", "BC", "BCConfig", "CQL", "CQLConfig", "IQL", "IQLConfig", "TD3BC", "TD3BCConfig", "DAggerConfig", "A2C", "A2CConfig", "PPO", "PPOConfig", "DDPG", "DDPGConfig", "SAC", "SACConfig", "TD3", "TD3Config"]
