import jax
import jax.numpy as jnp
import numpy as np

from contrl.agents.base import td_loss
from contrl.agents.sac import SAC, SACConfig, actor_loss, soft_td_target, temperature_loss
from contrl.data import Batch


def test_td_loss_hand_computed():
    q = jnp.array([[1.0, 2.0], [0.0, 4.0]])
    target = jnp.array([2.0, 2.0])
    # critic 0: errors (-1, 0) -> mean sq 0.5; critic 1: (-2, 2) -> 4; 0.5 * (0.5 + 4)
    assert float(td_loss(q, target)) == 2.25


def test_soft_target_bootstraps_through_truncation_not_termination():
    next_q = jnp.array([[10.0, 10.0, 10.0], [8.0, 12.0, 9.0]])
    next_logp = jnp.array([-1.0, 0.0, 2.0])
    reward = jnp.array([1.0, 1.0, 1.0])
    # discount: mid-episode/truncated (gamma) for 0 and 1, terminated (0) for 2
    discount = jnp.array([0.9, 0.9, 0.0])
    out = soft_td_target(reward, discount, next_q, next_logp, alpha=0.5)
    np.testing.assert_allclose(out, [1 + 0.9 * (8 + 0.5), 1 + 0.9 * 10, 1.0])


def test_actor_and_temperature_losses_hand_computed():
    q = jnp.array([[3.0, 1.0], [2.0, 5.0]])
    logp = jnp.array([-1.0, 1.0])
    # min q = (2, 1); alpha*logp - q = (-0.2-2, 0.2-1) = (-2.2, -0.8) -> mean -1.5
    np.testing.assert_allclose(actor_loss(logp, q, 0.2), -1.5, rtol=1e-6)
    # entropy 1 below target 3 -> d/dlog_alpha = -2 <0: descent raises alpha
    g = jax.grad(temperature_loss)(0.0, 1.0, 3.0)
    assert float(g) == -2.0


def _batch(k, b, obs_dim, act_dim, seed=0):
    r = np.random.default_rng(seed)
    return Batch(r.standard_normal((k, b, obs_dim), dtype=np.float32),
                 r.uniform(-1, 1, (k, b, act_dim)).astype(np.float32),
                 r.standard_normal((k, b), dtype=np.float32),
                 np.full((k, b), 0.99, np.float32),
                 r.standard_normal((k, b, obs_dim), dtype=np.float32))


def test_k_step_update_equals_k_single_updates():
    cfg = SACConfig(hidden=(16, 16), batch_size=8)
    batches = _batch(3, 8, 3, 2)
    a, _ = SAC.create(cfg, 3, 2, 0).update(batches)
    b = SAC.create(cfg, 3, 2, 0)
    for i in range(3):
        b, _ = b.update(jax.tree_util.tree_map(lambda x: x[i:i + 1], batches))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-5, atol=1e-6)


def test_update_moves_targets_slowly_and_tunes_alpha():
    cfg = SACConfig(hidden=(16, 16), tau=0.005)
    agent = SAC.create(cfg, 3, 2, 0)
    old_t = np.array(jax.tree_util.tree_leaves(agent.target_critic)[0])  # copy: update donates
    new, m = agent.update(_batch(2, 16, 3, 2))
    assert set(SAC.METRICS) <= set(m)
    new_t = jax.tree_util.tree_leaves(new.target_critic)[0]
    new_c = jax.tree_util.tree_leaves(new.critic.params)[0]
    assert not np.allclose(new_t, old_t)
    assert np.abs(np.asarray(new_t - old_t)).max() < np.abs(np.asarray(new_c - old_t)).max()
    assert float(new.alpha) != 1.0


def test_eval_actions_deterministic_and_bounded():
    agent = SAC.create(SACConfig(hidden=(16,)), 3, 2, 0)
    obs = jnp.ones((4, 3)) * 50
    (a1, c1), (a2, _) = agent.eval_actions(obs), agent.eval_actions(obs)
    assert c1 == agent.initial_carry(4) == ()  # feed-forward: no carried state
    np.testing.assert_array_equal(a1, a2)
    s, _, agent2 = agent.sample_actions(obs)
    assert np.all(np.abs(np.asarray(s)) <= 1)
    assert not np.array_equal(agent.key, agent2.key)


def test_create_is_seeded():
    a, b, c = (SAC.create(SACConfig(hidden=(8,)), 3, 2, s) for s in (0, 0, 1))
    ka, kb, kc = (np.asarray(x.actor.params["params"]["MLP_0"]["Dense_0"]["kernel"]) for x in (a, b, c))
    np.testing.assert_array_equal(ka, kb)
    assert not np.array_equal(ka, kc)
