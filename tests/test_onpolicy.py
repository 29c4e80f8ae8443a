"""On-policy building blocks against hand computations: GAE, reward-to-go, REINFORCE's
episode returns, normalizers, PPO's losses and A2C's advantage knobs."""
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.a2c import A2C, A2CConfig, policy_gradient_loss
from contrl.agents.onpolicy import (Rollout, clip_grads, discounted_returns,
                                    episode_start_returns, gae, standardize)
from contrl.agents.ppo import PPO, PPOConfig, clipped_surrogate_loss, value_loss
from contrl.config import ConfigError
from contrl.nets import gaussian_entropy, gaussian_log_prob
from contrl.normalize import RunningStats, update_return_stats


def col(*xs):
    """A (T, 1) array: one environment."""
    return jnp.asarray(xs, jnp.float32)[:, None]


R = col(1, 2, 3)
V = col(0.5, 1, 1.5)
V_NEXT = col(1, 1.5, 2)
NONE = col(0, 0, 0)
AT1 = col(0, 1, 0)


def close(a, b):
    np.testing.assert_allclose(np.asarray(a).ravel(), b, rtol=1e-6)


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


def test_running_stats_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (50, 4)), rng.normal(-1, 0.5, (30, 4))
    s = RunningStats.create((4,)).update(jnp.asarray(a)).update(jnp.asarray(b))
    both = np.concatenate([a, b])
    np.testing.assert_allclose(s.mean, both.mean(0), rtol=1e-4)
    np.testing.assert_allclose(s.var, both.var(0), rtol=1e-3)
    assert np.all(np.abs(s.normalize(jnp.asarray(both * 100), 5.0)) <= 5.0)


def test_return_stats_track_the_discounted_return():
    # rewards 1, 2 with gamma 0.5: running returns 1, then 0.5 * 1 + 2 = 2.5; reset after a done
    stats, ret = update_return_stats(RunningStats.create(), jnp.zeros(1), col(1, 2), col(0, 1), 0.5)
    assert abs(float(stats.mean) - 1.75) < 1e-3 and abs(float(stats.var) - 0.5625) < 1e-3
    assert float(ret[0]) == 0.0


def test_ppo_losses_by_hand():
    ratio = jnp.asarray([0.5, 1.5])
    assert float(clipped_surrogate_loss(ratio, jnp.ones(2), 0.2)) == pytest.approx(-0.85)
    assert float(clipped_surrogate_loss(ratio, -jnp.ones(2), 0.2)) == pytest.approx(1.15)
    v, old, target = jnp.asarray([2.0]), jnp.asarray([1.0]), jnp.asarray([3.0])
    assert float(value_loss(v, old, target, None)) == pytest.approx(0.5)
    assert float(value_loss(v, old, target, 0.2)) == pytest.approx(1.62)  # 0.5 * (1.2 - 3)^2


def test_gaussian_log_prob_and_entropy():
    mean, log_std, a = jnp.zeros((1, 2)), jnp.log(jnp.full((1, 2), 2.0)), jnp.asarray([[2.0, 0.0]])
    expected = 2 * (-0.5 * np.log(2 * np.pi) - np.log(2.0)) - 0.5
    assert float(gaussian_log_prob(mean, log_std, a)[0]) == pytest.approx(expected, rel=1e-6)
    assert float(gaussian_entropy(log_std)[0]) == pytest.approx(
        2 * (np.log(2.0) + 0.5 * (1 + np.log(2 * np.pi))), rel=1e-6)
    assert float(policy_gradient_loss(jnp.asarray([1.0, 3.0]), jnp.asarray([2.0, -1.0]))) == 0.5


def test_clip_grads_limits_the_global_norm():
    g = {"a": jnp.asarray([3.0]), "b": jnp.asarray([4.0])}
    out = clip_grads(g, 1.0)
    assert float(jnp.sqrt(out["a"] ** 2 + out["b"] ** 2)[0]) == pytest.approx(1.0, rel=1e-5)
    assert clip_grads(g, 0.0) is g


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
    with pytest.raises(ConfigError, match="optimizer"):
        PPOConfig(optimizer="sgd").validate()
    with pytest.raises(ConfigError, match="gae_lambda"):
        A2CConfig(gae_lambda=1.5).validate()
    with pytest.raises(ConfigError, match="activation"):
        PPOConfig(activation="gelu").validate()


def test_ppo_update_changes_policy_and_merges_normalizers():
    cfg = PPOConfig(rollout_steps=8, minibatches=2, epochs=2)
    agent = PPO.create(cfg, 3, 2, seed=0, num_envs=2)
    rng = np.random.default_rng(0)
    obs = rng.normal(5, 1, (8, 2, 3)).astype(np.float32)
    ro = Rollout(obs, rng.normal(size=(8, 2, 2)).astype(np.float32),
                 np.ones((8, 2), np.float32), np.zeros((8, 2), np.float32),
                 np.zeros((8, 2), np.float32), obs + 0.1)
    before = np.asarray(agent.policy.params["params"]["log_std"]).copy()
    new, info = agent.update(ro, np.float32(1.0))
    assert set(info) == set(PPO.METRICS)
    assert not np.allclose(before, new.policy.params["params"]["log_std"])
    np.testing.assert_allclose(new.obs_stats.mean, obs.reshape(-1, 3).mean(0), rtol=1e-3)
    assert float(new.running_return[0]) > 1.0  # running discounted return of reward 1
    # lr_scale 0 (the end of an annealed run) leaves the parameters unchanged
    trained = np.asarray(new.policy.params["params"]["log_std"]).copy()
    again, _ = new.update(ro, np.float32(0.0))  # (update donates its agent)
    np.testing.assert_array_equal(trained, np.asarray(again.policy.params["params"]["log_std"]))
