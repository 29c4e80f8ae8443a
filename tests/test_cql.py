"""CQL: the conservative penalty by hand, its options (floor, Lagrange weight, imitation
warm start, deterministic backup), and bounded Q values."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.cql import CQL, CQLConfig, cql_bc_loss, cql_penalty
from contrl.data import Batch


def test_cql_penalty_by_hand():
    # one critic, one state, one sampled action per term, 1-d actions
    q_data = jnp.asarray([[1.0]])
    q_rand, q_pi, q_next = (jnp.asarray([[[v]]]) for v in (2.0, 0.0, 1.0))
    logp_pi, logp_next = jnp.asarray([[0.5]]), jnp.asarray([[-0.5]])
    got = cql_penalty(q_data, q_rand, q_pi, logp_pi, q_next, logp_next, action_dim=1)
    # uniform density on [-1, 1] is 1/2: Q - log(1/2) = 2 + log 2
    expected = math.log(math.exp(2 + math.log(2)) + math.exp(0 - 0.5) + math.exp(1 + 0.5)) - 1
    assert float(got[0]) == pytest.approx(expected, rel=1e-5)
    plain = cql_penalty(q_data, q_rand, q_pi, logp_pi, q_next, logp_next, 1,
                        importance_sample=False)
    assert float(plain[0]) == pytest.approx(math.log(math.e**2 + math.e + 1 + math.e) - 1, rel=1e-5)
    hot = cql_penalty(q_data, q_rand, q_pi, logp_pi, q_next, logp_next, 1, temperature=2.0,
                      importance_sample=False)
    assert float(hot[0]) == pytest.approx(
        2 * math.log(math.e ** 1 + math.e ** 0.5 + 1 + math.e ** 0.5) - 1, rel=1e-5)


def test_cql_penalty_clip_min_floors_each_sample():
    # importance-sampled, 1-d actions: per sample lse = log(e^(0 + log 2) + e^(0 - 0)) = log 3
    q_data = jnp.asarray([[10.0, 0.0]])
    zeros = jnp.zeros((1, 2, 1))
    logp = jnp.zeros((2, 1))
    args = (q_data, zeros, zeros, logp, zeros[:, :, :0], logp[:, :0], 1)
    free = cql_penalty(*args)
    floored = cql_penalty(*args, clip_min=-1.0)
    assert float(free[0]) == pytest.approx((math.log(3) - 10.0 + math.log(3)) / 2, abs=1e-5)
    assert float(floored[0]) == pytest.approx((-1.0 + math.log(3)) / 2, abs=1e-5)


def test_cql_penalty_is_zero_only_when_data_actions_dominate():
    # the logsumexp is at least the max, so the penalty is >= max(sampled Q) - Q(data)
    rng = np.random.default_rng(0)
    q = jnp.asarray(rng.normal(size=(2, 4, 3)))
    logp = jnp.zeros((4, 3))
    pen = cql_penalty(jnp.zeros((2, 4)), q, q, logp, q, logp, 1, importance_sample=False)
    assert pen.shape == (2,)
    assert np.all(np.asarray(pen) >= np.asarray(q.max(-1).mean(-1)) - 1e-6)


def test_cql_update_stays_finite_and_lagrange_weight_moves():
    cfg = CQLConfig(hidden=(16, 16), lagrange=True, lagrange_gap=100.0, batch_size=8)
    agent = CQL.create(cfg, 3, 1, seed=0)
    rng = np.random.default_rng(0)
    batch = Batch(obs=rng.normal(size=(5, 8, 3)).astype(np.float32),
                  action=rng.uniform(-1, 1, (5, 8, 1)).astype(np.float32),
                  reward=rng.normal(size=(5, 8)).astype(np.float32),
                  discount=np.full((5, 8), 0.99, np.float32),
                  next_obs=rng.normal(size=(5, 8, 3)).astype(np.float32))
    w0 = float(agent.cql_weight())
    agent, metrics = agent.update(batch)
    assert all(np.isfinite(float(v)) for v in metrics.values())
    # the penalty is far below the gap, so the dual step lowers the weight
    assert float(agent.cql_weight()) < w0


def test_cql_bc_warmup_loss_by_hand_and_saturated_actions():
    # alpha * mean(log pi) - mean(log pi(a_data)) = 0.5 * 2 + 1.5
    assert float(cql_bc_loss(jnp.asarray([1.0, 3.0]), jnp.asarray([-1.0, -2.0]), 0.5)) == 2.5
    # dataset actions at exactly +-1 (a saturated tanh policy) keep a finite log-probability
    from contrl.nets import tanh_gaussian_log_prob
    lp = tanh_gaussian_log_prob(jnp.zeros((2, 2)), jnp.zeros((2, 2)),
                                jnp.asarray([[1.0, -1.0], [0.0, 1.0]]))
    assert np.all(np.isfinite(np.asarray(lp)))


def test_cql_bc_steps_pull_the_actor_to_the_data_then_stop():
    cfg = CQLConfig(hidden=(16, 16), batch_size=32, n_actions=2, bc_steps=300, actor_lr=3e-3)
    agent = CQL.create(cfg, 3, 1, seed=0)
    rng = np.random.default_rng(0)
    k = 100
    batch = Batch(obs=rng.normal(size=(k, 32, 3)).astype(np.float32),
                  action=np.full((k, 32, 1), 0.8, np.float32),
                  reward=np.zeros((k, 32), np.float32),
                  discount=np.full((k, 32), 0.99, np.float32),
                  next_obs=rng.normal(size=(k, 32, 3)).astype(np.float32))
    obs = jnp.asarray(batch.obs[0])
    before = float(jnp.abs(agent.eval_actions(obs)[0] - 0.8).mean())
    for _ in range(3):  # 300 imitation steps
        agent, metrics = agent.update(batch)
        assert all(np.isfinite(float(v)) for v in metrics.values())
    after = float(jnp.abs(agent.eval_actions(obs)[0] - 0.8).mean())
    assert after < 0.5 * before, (before, after)
    # past bc_steps the loss is SAC's again: with zero rewards and Q ~ 0 the data no longer pull
    bc_loss, _ = agent._actor_loss(agent.actor.params, Batch(*(x[0] for x in batch)),
                                   jax.random.PRNGKey(0))
    sac_loss, _ = agent.replace(bc_steps=0)._actor_loss(
        agent.actor.params, Batch(*(x[0] for x in batch)), jax.random.PRNGKey(0))
    assert float(bc_loss) == float(sac_loss)


def test_cql_deterministic_backup_bootstraps_from_the_mean_action():
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)), jnp.float32)
    sampled = jnp.full((4, 1), 0.3)
    agent = CQL.create(CQLConfig(hidden=(16, 16), deterministic_backup=False), 3, 1, seed=0)
    assert agent.target_action(obs, sampled) is sampled
    agent = CQL.create(CQLConfig(hidden=(16, 16)), 3, 1, seed=0)  # the default
    np.testing.assert_allclose(agent.target_action(obs, sampled), agent.eval_actions(obs)[0],
                               atol=1e-6)
    # with dataset statistics, the target acts on the batch's (already normalized) next
    # observations: tanh(mean(s')) of exactly those, not of a second normalization
    from contrl.agents.offline import DataStats
    stats = DataStats(jnp.full(3, 5.0), jnp.full(3, 4.0), jnp.float32(1.0), jnp.float32(0.0))
    agent = agent.replace(stats=stats)
    expected = jnp.tanh(agent.actor.apply_fn(agent.actor.params, obs)[0])
    np.testing.assert_allclose(agent.target_action(obs, sampled), expected, atol=1e-6)
    assert not np.allclose(agent.target_action(obs, sampled), agent.eval_actions(obs)[0])


def test_q_values_stay_within_the_return_bounds(pendulum_dataset, tmp_path, offline_run):
    """The stability check as a test: CQL's logged Q statistics on a dataset stay between
    the smallest and largest discounted return any reward sequence of the data allows."""
    import csv

    from contrl.data.datasets import load_dataset
    # the settings of test_offline_loop's CQL run, whose compiled update this one reuses
    out = offline_run("cql", pendulum_dataset, tmp_path, steps=800, n_actions=2,
                      steps_per_call=100, eval_every=800, log_every=200)
    rewards = load_dataset(pendulum_dataset).rewards
    low, high = rewards.min() / (1 - 0.99), rewards.max() / (1 - 0.99)
    margin = 0.05 * (high - low)  # function approximation at initialization is not exact
    low, high = low - margin, high + margin
    with open(f"{out['run_dir']}/progress.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["q_mean"]]
    assert len(rows) == 4
    for r in rows:
        assert np.isfinite(float(r["critic_loss"]))
        assert low <= float(r["q_min"]) <= float(r["q_mean"]) <= float(r["q_max"]) <= high, r


def test_policy_actions_are_n_draws_per_state_in_row_order():
    """The actor runs once per state and N noises are drawn: rows b*N..b*N+N-1 hold state b's
    samples, each with the log-probability of state b's distribution."""
    from contrl.nets import tanh_gaussian_log_prob

    cfg = CQLConfig(hidden=(8, 8), n_actions=3)
    agent = CQL.create(cfg, 4, 2, seed=0)
    obs = jnp.asarray(np.random.default_rng(0).normal(size=(5, 4)), jnp.float32)
    actions, logp = agent._policy_actions(obs, jax.random.PRNGKey(1))
    assert actions.shape == (15, 2) and logp.shape == (5, 3)
    mean, log_std = agent.actor.apply_fn(agent.actor.params, obs)
    expected = tanh_gaussian_log_prob(jnp.repeat(mean, 3, axis=0), jnp.repeat(log_std, 3, axis=0),
                                      actions).reshape(5, 3)
    np.testing.assert_allclose(logp, expected, rtol=1e-4, atol=1e-4)
    assert float(jnp.std(actions[:3], axis=0).min()) > 0  # distinct draws for one state
