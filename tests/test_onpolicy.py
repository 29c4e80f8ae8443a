"""On-policy building blocks against hand computations: GAE, reward-to-go, REINFORCE's
episode returns, advantage normalization, gradient clipping, the Gaussian policy's density."""
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.onpolicy import (clip_grads, discounted_returns, episode_start_returns, gae,
                                    standardize)
from contrl.nets import gaussian_entropy, gaussian_log_prob
from rollout_data import AT1, NONE, V_NEXT, R, V, close, col




def test_gae_by_hand():
    # gamma = lambda = 0.5; deltas 1.0, 1.75, 2.5
    close(gae(R, V, V_NEXT, NONE, NONE, 0.5, 0.5), [1.59375, 2.375, 2.5])
    # termination after step 1: no bootstrap there (delta 2 - 1 = 1), trace cut
    close(gae(R, V, V_NEXT, AT1, AT1, 0.5, 0.5), [1.25, 1.0, 2.5])
    # time limit after step 1: bootstrap with V(final obs) = 1.5, trace cut
    close(gae(R, V, V_NEXT, NONE, AT1, 0.5, 0.5), [1.4375, 1.75, 2.5])


def test_gae_lambda_one_is_monte_carlo_minus_baseline():
    mc = discounted_returns(R, V_NEXT, NONE, NONE, 0.5)
    close(gae(R, V, V_NEXT, NONE, NONE, 0.5, 1.0), np.asarray(mc - V).ravel())


def test_reward_to_go_by_hand():
    nxt = col(10, 20, 30)
    close(discounted_returns(R, nxt, NONE, NONE, 0.5), [6.5, 11, 18])   # last step bootstraps 30
    close(discounted_returns(R, nxt, NONE, AT1, 0.5), [7, 12, 18])      # time limit: V = 20
    close(discounted_returns(R, nxt, AT1, AT1, 0.5), [2, 2, 18])        # termination: no V


def test_episode_start_returns_give_every_step_its_episode_return():
    g = discounted_returns(R, col(10, 20, 30), NONE, AT1, 0.5)         # [7, 12, 18]
    close(episode_start_returns(g, AT1), [7, 7, 18])
    two_envs = jnp.concatenate([g, g * 0 + col(1, 2, 3)], axis=1)
    out = np.asarray(episode_start_returns(two_envs, jnp.concatenate([AT1, NONE], axis=1)))
    np.testing.assert_allclose(out, [[7, 1], [7, 1], [18, 1]])


def test_advantage_normalization():
    x = standardize(jnp.asarray([1.0, 2.0, 3.0, 6.0]))
    assert abs(float(x.mean())) < 1e-6 and abs(float(x.std()) - 1) < 1e-5


def test_clip_grads_limits_the_global_norm():
    g = {"a": jnp.asarray([3.0]), "b": jnp.asarray([4.0])}
    out = clip_grads(g, 1.0)
    assert float(jnp.sqrt(out["a"] ** 2 + out["b"] ** 2)[0]) == pytest.approx(1.0, rel=1e-5)
    assert clip_grads(g, 0.0) is g


def test_gaussian_log_prob_and_entropy():
    mean, log_std, a = jnp.zeros((1, 2)), jnp.log(jnp.full((1, 2), 2.0)), jnp.asarray([[2.0, 0.0]])
    expected = 2 * (-0.5 * np.log(2 * np.pi) - np.log(2.0)) - 0.5
    assert float(gaussian_log_prob(mean, log_std, a)[0]) == pytest.approx(expected, rel=1e-6)
    assert float(gaussian_entropy(log_std)[0]) == pytest.approx(
        2 * (np.log(2.0) + 0.5 * (1 + np.log(2 * np.pi))), rel=1e-6)


def test_explained_variance_by_hand():
    from contrl.agents.onpolicy import explained_variance
    y = jnp.asarray([1.0, 2.0, 3.0, 4.0])  # var 1.25
    assert float(explained_variance(y, y)) == pytest.approx(1.0)
    # residual y - pred = [1, 1, -1, -1]: var 1 -> 1 - 1 / 1.25
    assert float(explained_variance(y - jnp.asarray([1.0, 1.0, -1.0, -1.0]), y)) == pytest.approx(0.2)
