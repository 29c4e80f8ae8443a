"""The algorithm registry: every agent class provides the Agent interface the loops rely on
(the loops' tests run each of them through it)."""
import inspect

import numpy as np
import pytest

from contrl.agents.base import Agent
from contrl.agents.sac import SAC, SACConfig
from contrl.errors import UnknownIdError
from contrl.policy import Policy
from contrl.registry import REGISTRY, resolve_algo

MEMBERS = ("create", "initial_carry", "sample_actions", "eval_actions", "update", "pretrain",
           "fit_dataset")


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_agent_class_has_the_interface(name):
    cfg_cls, agent_cls, kind = REGISTRY[name]
    for m in MEMBERS:
        assert callable(getattr(agent_cls, m)), (name, m)
    assert inspect.ismethod(agent_cls.create)  # a classmethod
    assert list(inspect.signature(agent_cls.create).parameters)[:5] == [
        "cfg", "obs_dim", "action_dim", "seed", "num_envs"]
    assert isinstance(agent_cls.METRICS, tuple) and agent_cls.METRICS
    assert kind in ("offpolicy", "onpolicy", "offline", "dagger", "mopo")  # loops in contrl.train


def test_an_agent_instance_satisfies_the_protocols():
    agent = SAC.create(SACConfig(hidden=(8,)), 3, 2, 0)
    assert isinstance(agent, Agent) and isinstance(agent, Policy)
    obs = np.zeros((2, 3), np.float32)
    action, carry = agent.eval_actions(obs, agent.initial_carry(2))
    assert np.asarray(action).shape == (2, 2) and carry == ()


def test_unknown_algorithm_names_the_closest():
    with pytest.raises(UnknownIdError, match="closest: sac"):
        resolve_algo("sak")
