"""A2C: the policy-gradient loss and the advantage knobs (reward-to-go, baseline) by hand."""
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.a2c import A2C, A2CConfig, policy_gradient_loss
from contrl.agents.onpolicy import Rollout, discounted_returns
from contrl.config import ConfigError
from rollout_data import NONE, V_NEXT, R, V, close




def test_policy_gradient_loss_by_hand():
    # -mean(log pi * advantage) = -(1 * 2 + 3 * -1) / 2
    assert float(policy_gradient_loss(jnp.asarray([1.0, 3.0]), jnp.asarray([2.0, -1.0]))) == 0.5


@pytest.mark.parametrize("rtg,baseline,expected", [
    (False, False, [2.75, 2.75, 2.75]),   # REINFORCE: whole-episode return for every step
    (True, False, [2.75, 3.5, 3.0]),      # reward-to-go
])
def test_a2c_advantage_knobs_without_baseline(rtg, baseline, expected):
    cfg = A2CConfig(gamma=0.5, gae_lambda=0.9, reward_to_go=rtg, use_baseline=baseline)
    agent = A2C.create(cfg, 3, 1, seed=0)
    ro = Rollout(None, None, R, NONE, NONE, None)
    adv, _ = agent.advantages(ro, R, V, V_NEXT)
    close(adv, expected)


def test_a2c_baseline_subtracts_values():
    cfg = A2CConfig(gamma=0.5, gae_lambda=1.0)
    agent = A2C.create(cfg, 3, 1, seed=0)
    adv, targets = agent.advantages(Rollout(None, None, R, NONE, NONE, None), R, V, V_NEXT)
    mc = np.asarray(discounted_returns(R, V_NEXT, NONE, NONE, 0.5)).ravel()
    close(adv, mc - np.asarray(V).ravel())
    close(targets, mc)


def test_config_errors():
    with pytest.raises(ConfigError, match="gae_lambda"):
        A2CConfig(gae_lambda=1.5).validate()
