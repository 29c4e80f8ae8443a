"""Algorithms. Each module defines a config dataclass and an immutable agent pytree.

The registry maps an algorithm name to ``(ConfigClass, AgentClass, loop_kind)``.
"""
from __future__ import annotations

from contrl.agents.sac import SAC, SACConfig

REGISTRY = {
    "sac": (SACConfig, SAC, "offpolicy"),
}

__all__ = ["REGISTRY", "SAC", "SACConfig"]
