"""The algorithms contrl knows: name -> (config class, agent class, loop kind)."""
from __future__ import annotations

import difflib

from contrl.agents.a2c import A2C, A2CConfig
from contrl.agents.bc import BC, BCConfig
from contrl.agents.cql import CQL, CQLConfig
from contrl.agents.dagger import DAggerConfig
from contrl.agents.ddpg import DDPG, DDPGConfig
from contrl.agents.iql import IQL, IQLConfig
from contrl.agents.mopo import MOPO, MOPOConfig
from contrl.agents.ppo import PPO, PPOConfig
from contrl.agents.recurrent import RDPG, RSAC, RTD3, RDPGConfig, RSACConfig, RTD3Config
from contrl.agents.sac import SAC, SACConfig
from contrl.agents.seeded_sac import SeededSAC, SeededSACConfig
from contrl.agents.td3 import TD3, TD3Config
from contrl.agents.td3bc import TD3BC, TD3BCConfig
from contrl.errors import UnknownIdError

REGISTRY = {
    "sac": (SACConfig, SAC, "offpolicy"),
    "td3": (TD3Config, TD3, "offpolicy"),
    "ddpg": (DDPGConfig, DDPG, "offpolicy"),
    "seeded_sac": (SeededSACConfig, SeededSAC, "offpolicy"),
    "rsac": (RSACConfig, RSAC, "offpolicy"),
    "rtd3": (RTD3Config, RTD3, "offpolicy"),
    "rdpg": (RDPGConfig, RDPG, "offpolicy"),
    "ppo": (PPOConfig, PPO, "onpolicy"),
    "a2c": (A2CConfig, A2C, "onpolicy"),
    "bc": (BCConfig, BC, "offline"),
    "dagger": (DAggerConfig, BC, "dagger"),
    "iql": (IQLConfig, IQL, "offline"),
    "cql": (CQLConfig, CQL, "offline"),
    "td3bc": (TD3BCConfig, TD3BC, "offline"),
    "mopo": (MOPOConfig, MOPO, "mopo"),
}


def resolve_algo(name: str):
    """(config class, agent class, loop kind) of an algorithm; an unknown name is an error
    naming the closest ones."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UnknownIdError(f"unknown algorithm '{name}' (known: {', '.join(REGISTRY)}){hint}")
    return REGISTRY[name]
