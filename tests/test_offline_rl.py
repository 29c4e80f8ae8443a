"""Offline RL: IQL, CQL and TD3+BC losses by hand, dataset statistics, the offline loop with
its online phase, exact resume, dataset export from a replay buffer, and learning on Pendulum."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.base import Batch
from contrl.agents.cql import CQL, CQLConfig, cql_bc_loss, cql_penalty
from contrl.agents.iql import IQLConfig, awr_weights, expectile_loss
from contrl.agents.offline import DataStats, reward_transform
from contrl.agents.td3bc import td3bc_actor_loss
from contrl.config import ConfigError
from contrl.data.datasets import load_dataset, normalized_score


def test_expectile_loss_by_hand():
    diff = jnp.asarray([1.0, -2.0])
    # positive errors weigh 0.7, negative ones 0.3: (0.7 * 1 + 0.3 * 4) / 2
    assert float(expectile_loss(diff, 0.7)) == pytest.approx(0.95)
    assert float(expectile_loss(diff, 0.5)) == pytest.approx(0.5 * 0.5 * (1 + 4))


def test_awr_weights_are_clipped():
    w = awr_weights(jnp.asarray([0.0, 1.0, 10.0]), 3.0, 100.0)
    np.testing.assert_allclose(w, [1.0, math.exp(3.0), 100.0], rtol=1e-5)


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


def test_td3bc_actor_loss_by_hand():
    q = jnp.asarray([[1.0, 3.0]])  # mean |Q| = 2 -> lambda = 2.5 / 2
    pi, a = jnp.asarray([[0.5], [0.0]]), jnp.zeros((2, 1))
    assert float(td3bc_actor_loss(q, pi, a, 2.5)) == pytest.approx(-1.25 * 2.0 + 0.125)


def test_reward_transforms():
    returns = np.asarray([10.0, 110.0, 60.0])
    assert reward_transform(returns, "returns") == pytest.approx((10.0, 0.0))  # 1000 / 100
    assert reward_transform(returns, "antmaze") == (1.0, -1.0)
    assert reward_transform(returns, "none") == (1.0, 0.0)
    with pytest.raises(ConfigError, match="two complete episodes"):
        reward_transform(np.asarray([5.0]), "returns")
    stats = DataStats(jnp.asarray([1.0]), jnp.asarray([2.0]), jnp.float32(10.0), jnp.float32(-1.0))
    b = stats.batch(Batch(obs=jnp.asarray([[3.0]]), action=jnp.zeros((1, 1)),
                          reward=jnp.asarray([0.5]), discount=jnp.ones(1),
                          next_obs=jnp.asarray([[5.0]])))
    np.testing.assert_allclose(b.obs, [[1.0]])
    np.testing.assert_allclose(b.next_obs, [[2.0]])
    np.testing.assert_allclose(b.reward, [4.0])  # 10 * 0.5 - 1


def test_normalized_score():
    assert normalized_score(-1200.0, -1200.0, -150.0) == pytest.approx(0.0)
    assert normalized_score(-675.0, -1200.0, -150.0) == pytest.approx(50.0)
    assert normalized_score(-150.0, -1200.0, -150.0) == pytest.approx(100.0)


def test_config_errors():
    with pytest.raises(ConfigError, match="reward_normalization"):
        IQLConfig(reward_normalization="scaled").validate()
    with pytest.raises(ConfigError, match="expectile"):
        IQLConfig(expectile=1.5).validate()
    with pytest.raises(ConfigError, match="n_actions"):
        CQLConfig(n_actions=0).validate()


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
    before = float(jnp.abs(agent.eval_actions(obs) - 0.8).mean())
    for _ in range(3):  # 300 imitation steps
        agent, metrics = agent.update(batch)
        assert all(np.isfinite(float(v)) for v in metrics.values())
    after = float(jnp.abs(agent.eval_actions(obs) - 0.8).mean())
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
    np.testing.assert_allclose(agent.target_action(obs, sampled), agent.eval_actions(obs), atol=1e-6)


def _train(algo, dataset, tmp_path, **over):
    from contrl.train import train
    values = dict(dataset=dataset, steps=1000, eval_every=500, eval_episodes=2,
                  steps_per_call=250, hidden=(32, 32), batch_size=64, runs_dir=str(tmp_path),
                  progress=False, tensorboard=False)
    values.update(over)
    return train(algo, "Pendulum-v1", values)


@pytest.mark.parametrize("algo", ["iql", "td3bc", "cql"])
def test_offline_resume_is_exact(algo, pendulum_dataset, tmp_path):
    from contrl.run import Checkpoint
    from contrl.train import train
    extra = {"cql": {"n_actions": 2}, "iql": {"actor_decay_steps": 1000}}.get(algo, {})
    full = _train(algo, pendulum_dataset, tmp_path / "a", **extra)
    half = _train(algo, pendulum_dataset, tmp_path / "b", steps=500, **extra)
    train(algo, None, {"steps": 1000}, resume=half["run_dir"])

    def agent_bytes(run):
        return bytes(Checkpoint(f"{run}/checkpoints/latest.ckpt")._npz["agent"])
    assert agent_bytes(full["run_dir"]) == agent_bytes(half["run_dir"])  # identical agents


@pytest.mark.slow
def test_iql_learns_pendulum_from_a_dataset(pendulum_dataset, tmp_path):
    out = _train("iql", pendulum_dataset, tmp_path, steps=5000, eval_every=5000,
                 eval_episodes=5, hidden=(256, 256), batch_size=256, steps_per_call=1000)
    # the noisy expert data is enough for IQL to get most of the way to the expert
    assert out["eval"]["normalized_score"] >= 80, out["eval"]


def test_offline_to_online_phase(pendulum_dataset, tmp_path):
    out = _train("td3bc", pendulum_dataset, tmp_path, steps=500, online_steps=600,
                 learning_starts=200, update_every=4, eval_every=300, buffer_size=5000)
    online = out["online"]
    assert online["step"] == 600
    assert online["run_dir"].endswith("online")
    import csv
    with open(f"{online['run_dir']}/progress.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["eval_return"]]
    assert [int(r["step"]) for r in rows] == [300, 600]
    assert all(r["normalized_score"] for r in rows)  # scored against the dataset's references


def test_offline_algorithms_need_a_dataset(tmp_path):
    from contrl.train import train
    with pytest.raises(ConfigError, match="needs --dataset"):
        train("iql", "Pendulum-v1", {"runs_dir": str(tmp_path)})


def test_replay_buffer_export_and_concat(pendulum_expert, pendulum_dataset, tmp_path, monkeypatch):
    from contrl.data.collect import concat, export_buffer
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    out = export_buffer(pendulum_expert, "pendulum-replay-v0")
    replay = load_dataset("pendulum-replay-v0")
    assert out["steps"] == len(replay) == 10_000  # the expert run's whole buffer
    assert replay.timeouts.sum() == 50 and not replay.terminals.any()  # 200-step episodes
    assert replay.metadata["checkpoint_step"] == 10_000
    # consecutive rows of an episode chain: next observation = following observation
    inner = ~replay.episode_ends[:-1]
    np.testing.assert_array_equal(replay.next_observations[:-1][inner], replay.observations[1:][inner])
    import shutil
    shutil.copytree(pendulum_dataset, tmp_path / "minari" / "pendulum-noisy-v0")
    both = concat(["pendulum-replay-v0", "pendulum-noisy-v0"], "pendulum-mixed-v0")
    mixed = load_dataset("pendulum-mixed-v0")
    assert both["steps"] == len(mixed) == 30_000
    np.testing.assert_array_equal(mixed.observations[:10_000], replay.observations)
    assert mixed.ref_min_score == replay.ref_min_score
