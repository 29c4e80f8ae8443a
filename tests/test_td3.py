import jax
import jax.numpy as jnp
import numpy as np

from contrl.agents.ddpg import DDPGConfig
from contrl.agents.td3 import (TD3, TD3Config, deterministic_actor_loss, smoothed_target_action,
                               td_target)
from contrl.data import Batch


def test_target_smoothing_clips_noise_then_action():
    mu = jnp.array([[0.9, -0.2, 0.0]])
    noise = jnp.array([[0.3, -0.7, 0.1]])
    # noise clipped to 0.5 -> (0.3, -0.5, 0.1); then actions clipped to [-1, 1]
    np.testing.assert_allclose(smoothed_target_action(mu, noise, 0.5), [[1.0, -0.7, 0.1]], rtol=1e-6)


def test_td_target_and_actor_loss_hand_computed():
    next_q = jnp.array([[5.0, 1.0], [4.0, 2.0]])
    out = td_target(jnp.array([1.0, 1.0]), jnp.array([0.5, 0.0]), next_q)
    np.testing.assert_allclose(out, [1 + 0.5 * 4, 1.0])
    assert float(deterministic_actor_loss(jnp.array([[1.0, 3.0], [9.0, 9.0]]))) == -2.0


def _batch(k, b=16, seed=0):
    r = np.random.default_rng(seed)
    return Batch(r.standard_normal((k, b, 3), dtype=np.float32),
                 r.uniform(-1, 1, (k, b, 2)).astype(np.float32),
                 r.standard_normal((k, b), dtype=np.float32), np.full((k, b), 0.99, np.float32),
                 r.standard_normal((k, b, 3), dtype=np.float32))


def _leaves(tree):
    return [np.array(x) for x in jax.tree_util.tree_leaves(tree)]


def test_actor_and_targets_update_only_every_policy_delay_steps():
    agent = TD3.create(TD3Config(hidden=(8,), policy_delay=2), 3, 2, 0)
    actor0, target0 = _leaves(agent.actor.params), _leaves(agent.target_critic)
    agent, _ = agent.update(_batch(1))  # critic step 1: no actor update
    assert all(np.array_equal(a, b) for a, b in zip(actor0, _leaves(agent.actor.params)))
    assert all(np.array_equal(a, b) for a, b in zip(target0, _leaves(agent.target_critic)))
    agent, m = agent.update(_batch(1, seed=1))  # critic step 2: actor and targets move
    assert not all(np.array_equal(a, b) for a, b in zip(actor0, _leaves(agent.actor.params)))
    assert not all(np.array_equal(a, b) for a, b in zip(target0, _leaves(agent.target_critic)))
    assert int(agent.critic_steps) == 2 and float(m["actor_loss"]) != 0.0


def test_ddpg_has_one_critic_and_updates_actor_every_step():
    agent = TD3.create(DDPGConfig(hidden=(8,)), 3, 2, 0)
    q = agent.critic.apply_fn(agent.critic.params, jnp.ones((4, 3)), jnp.ones((4, 2)))
    assert q.shape == (1, 4)
    actor0 = _leaves(agent.actor.params)
    agent, _ = agent.update(_batch(1))
    assert not all(np.array_equal(a, b) for a, b in zip(actor0, _leaves(agent.actor.params)))


def test_exploration_noise_and_bounds():
    agent = TD3.create(TD3Config(hidden=(8,), exploration_noise=0.5), 3, 2, 0)
    obs = jnp.ones((64, 3))
    a, _, agent2 = agent.sample_actions(obs)
    mu, _ = agent.eval_actions(obs)
    assert np.all(np.abs(np.asarray(a)) <= 1)
    assert 0.3 < float(jnp.std(a - mu)) < 0.6
    assert not np.array_equal(agent.key, agent2.key)


def test_ou_noise_is_correlated_per_env_and_restarts_at_episode_end():
    from contrl.agents.ddpg import DDPGConfig
    from contrl.policy import reset_carry
    agent = TD3.create(DDPGConfig(hidden=(8,), noise_type="ou", exploration_noise=0.3), 3, 2, 0)
    obs = jnp.zeros((2, 3))
    carry = agent.initial_carry(2)  # the noise state is the policy's carry, one row per env
    assert np.asarray(carry).shape == (2, 2) and not np.any(np.asarray(carry))
    states = []
    for _ in range(50):
        _, carry, agent = agent.sample_actions(obs, carry)
        states.append(np.asarray(carry))
    x = np.stack(states)  # (T, envs, A)
    assert x.shape == (50, 2, 2) and not np.allclose(x[:, 0], x[:, 1])
    # consecutive OU values are strongly correlated, unlike independent Gaussian noise
    lag1 = np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]
    assert lag1 > 0.8
    carry = reset_carry(agent, carry, np.array([True, False]))
    assert np.all(np.asarray(carry)[0] == 0) and np.any(np.asarray(carry)[1] != 0)
    assert TD3.create(TD3Config(hidden=(8,)), 3, 2, 0).initial_carry(2) == ()  # gaussian noise


def test_bad_noise_type_is_rejected():
    import pytest

    from contrl.config import ConfigError
    with pytest.raises(ConfigError, match="noise_type"):
        TD3Config(noise_type="pink").validate()


def test_first_critic_view_equals_first_ensemble_member():
    agent = TD3.create(TD3Config(hidden=(8, 8)), 3, 2, 0)
    obs, act = jnp.ones((5, 3)), jnp.full((5, 2), 0.3)
    full = agent.critic.apply_fn(agent.critic.params, obs, act)
    one = agent.first_critic_fn(jax.tree_util.tree_map(lambda p: p[:1], agent.critic.params), obs, act)
    assert one.shape == (1, 5)
    np.testing.assert_allclose(one[0], full[0], rtol=1e-5, atol=1e-7)  # float32 sums reordered


def test_target_update_every_step_moves_targets_before_the_actor_does():
    # sbx's timing: the targets move after every critic step, the actor still every 2nd
    agent = TD3.create(TD3Config(hidden=(8,), policy_delay=2, target_update="every_step"), 3, 2, 0)
    actor0, target0 = _leaves(agent.actor.params), _leaves(agent.target_critic)
    tactor0 = _leaves(agent.target_actor)
    agent, _ = agent.update(_batch(1))
    assert all(np.array_equal(a, b) for a, b in zip(actor0, _leaves(agent.actor.params)))
    assert not all(np.array_equal(a, b) for a, b in zip(target0, _leaves(agent.target_critic)))
    # the target actor moved towards an unchanged actor: it is unchanged too (it started equal)
    assert all(np.allclose(a, b) for a, b in zip(tactor0, _leaves(agent.target_actor)))
    # target = (1 - tau) * old target + tau * new critic, for every leaf
    tau = agent.tau
    for t0, t1, c1 in zip(target0, _leaves(agent.target_critic), _leaves(agent.critic.params)):
        np.testing.assert_allclose(t1, (1 - tau) * t0 + tau * c1, rtol=1e-5, atol=1e-7)


def test_actor_on_min_critic_uses_the_smaller_q():
    cfg = TD3Config(hidden=(8, 8), actor_q="min")
    agent = TD3.create(cfg, 3, 2, 0)
    obs = jnp.asarray(np.random.default_rng(0).standard_normal((6, 3)), jnp.float32)
    pi = jnp.full((6, 2), 0.2)
    full = np.asarray(agent.critic.apply_fn(agent.critic.params, obs, pi))
    np.testing.assert_allclose(agent._actor_q(obs, pi)[0], full.min(axis=0), rtol=1e-5, atol=1e-7)
    first = TD3.create(TD3Config(hidden=(8, 8)), 3, 2, 0)
    np.testing.assert_allclose(first._actor_q(obs, pi)[0], full[0], rtol=1e-5, atol=1e-7)
    assert not np.allclose(full.min(axis=0), full[0])  # the two critics differ here


def test_bad_actor_q_and_target_update_are_rejected():
    import pytest

    from contrl.config import ConfigError
    with pytest.raises(ConfigError, match="actor_q must be first or min, got 'mean'"):
        TD3Config(actor_q="mean").validate()
    with pytest.raises(ConfigError, match="target_update"):
        TD3Config(target_update="never").validate()
