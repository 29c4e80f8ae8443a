"""TD3+BC: the actor loss by hand."""
import jax.numpy as jnp
import pytest

from contrl.agents.td3bc import td3bc_actor_loss


def test_td3bc_actor_loss_by_hand():
    q = jnp.asarray([[1.0, 3.0]])  # mean |Q| = 2 -> lambda = 2.5 / 2
    pi, a = jnp.asarray([[0.5], [0.0]]), jnp.zeros((2, 1))
    assert float(td3bc_actor_loss(q, pi, a, 2.5)) == pytest.approx(-1.25 * 2.0 + 0.125)
