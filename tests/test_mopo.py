"""MOPO: the dynamics losses and penalty by hand, the ensemble on a known linear system, early
stopping, rollouts that stop at terminations, the model buffer, and whole runs (exact resume
through both phases, --dynamics reuse and its refusals)."""
import csv
import math
import os
import re
import shutil
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.serialization import msgpack_restore

from contrl.agents.mopo import MOPO
from contrl.agents.dynamics import (Dynamics, DynamicsSpec, DynamicsTrainer, TrainSpec,
                                    disagreement_penalty, gaussian_nll, imagine, model_arrays,
                                    mse_per_model, split_dataset)
from contrl.config import ConfigError
from contrl.data.batch import Batch
from contrl.data.model_buffer import ModelBuffer
from contrl.envs.termination import hopper_done, termination_fn, walker2d_done
from contrl.errors import ContrlError
from contrl.loops.mopo import MOPOLoop
from contrl.resolve import build_configs
from contrl.run import Checkpoint, new_run_dir, read_run_config
from contrl.train import train
from conftest import altered_copy


def test_gaussian_nll_by_hand():
    mean = jnp.zeros((2, 1, 2))
    logvar = jnp.array([[[0.0, math.log(4.0)]], [[0.0, math.log(4.0)]]])
    target = jnp.array([[1.0, 2.0]])
    # per model: mean of (1/1 + 0, 4/4 + log 4) = (2 + log 4) / 2; two models summed
    assert float(gaussian_nll(mean, logvar, target)) == pytest.approx(2 + math.log(4.0), 1e-6)
    assert np.allclose(mse_per_model(mean, target), [2.5, 2.5])


def test_penalty_is_the_largest_std_norm_over_models():
    std = jnp.array([[[3.0, 4.0], [0.0, 0.0]],
                     [[0.0, 1.0], [1.0, 0.0]]])  # (models, rows, outputs)
    assert np.allclose(disagreement_penalty(std), [5.0, 1.0])


def test_log_variance_stays_inside_its_soft_bounds():
    spec = DynamicsSpec(1, 1, (8,), 2, 1)
    dyn = Dynamics.create(spec, jax.random.PRNGKey(0))
    _, logvar = jax.jit(spec.net().apply)(dyn.params,
                                          jnp.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]]))
    assert float(logvar.max()) <= 0.5 + 1e-4 and float(logvar.min()) >= -10.0  # soft: ~e^-10.5 over


def _linear_data(n=600, seed=0):
    """s' = s + 0.1 * (A s + b a), r = s_0 - s_1: a known linear system."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 2)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    a, b = np.array([[0.0, 1.0], [-1.0, 0.0]]), np.array([[0.0], [1.0]])
    nxt = (obs + 0.1 * (obs @ a.T + act @ b.T)).astype(np.float32)
    return SimpleNamespace(observations=obs, actions=act, next_observations=nxt,
                           rewards=(obs[:, 0] - obs[:, 1]).astype(np.float32), name="linear")


def _trainer(data, lr, epochs, patience, batch_size=64):
    train_rows, val_rows = split_dataset(_Sized(data), 100, np.random.default_rng(0))
    x, y = model_arrays(data, train_rows)
    spec, how = DynamicsSpec(2, 1, (32, 32), 3, 2), TrainSpec(batch_size, lr, 0.0, epochs, patience)
    return (DynamicsTrainer.create(spec, how, x, y, 0), tuple(map(jnp.asarray, (x, y))),
            tuple(map(jnp.asarray, model_arrays(data, val_rows))))


class _Sized(SimpleNamespace):
    def __init__(self, data):
        super().__init__(**vars(data))

    def __len__(self):
        return len(self.rewards)


def test_the_ensemble_fits_a_known_linear_system():
    data = _linear_data()
    trainer, train_xy, val_xy = _trainer(data, 1e-2, 25, 25)
    losses = []
    while not trainer.finished():
        trainer, m = trainer.run_epoch(*train_xy, *val_xy)
        losses.append(float(m["val_loss"]))
    assert losses[-1] < 0.02 * losses[0]  # normalized validation error down fifty-fold
    dyn = trainer.result()
    mean, _ = jax.jit(Dynamics.predict)(dyn, val_xy[0][:, :2], val_xy[0][:, 2:])
    truth = val_xy[1]
    err = np.abs(np.asarray(mean[dyn.elites]) - np.asarray(truth)).max()
    assert err < 0.1 * np.abs(np.asarray(truth)).max()  # each elite within 10% of the range
    assert set(np.asarray(dyn.elites).tolist()) <= {0, 1, 2} and len(dyn.elites) == 2


def test_early_stopping_keeps_the_best_epoch():
    # lr so small that no epoch after the first improves by 1%: training stops after
    # 1 + patience epochs, each model keeping its parameters of epoch 1
    trainer, train_xy, val_xy = _trainer(_linear_data(n=200), 1e-9, 100, 3)
    trainer, _ = trainer.run_epoch(*train_xy, *val_xy)
    first = jax.device_get(trainer.state.params)
    while not trainer.finished():
        trainer, _ = trainer.run_epoch(*train_xy, *val_xy)
    assert int(trainer.epoch) == 4 and int(trainer.since_improved) == 3
    kept = jax.device_get(trainer.result().params)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(kept),
                                                    jax.tree_util.tree_leaves(first)))
    last = jax.device_get(trainer.state.params)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(last),
                                                        jax.tree_util.tree_leaves(first)))
    assert np.array_equal(trainer.result().elites, np.argsort(trainer.best_loss)[:2])


def test_a_batch_larger_than_the_training_rows_is_one_batch_of_them_all():
    # 50 rows: 40 to train on, under the batch of 256 (was a reshape error, not an epoch)
    trainer, train_xy, val_xy = _trainer(_linear_data(n=50), 1e-2, 2, 2, batch_size=256)
    trainer, m = trainer.run_epoch(*train_xy, *val_xy)
    assert int(trainer.epoch) == 1 and np.isfinite(float(m["val_loss"]))


def test_a_dataset_too_small_for_a_validation_split_is_refused():
    with pytest.raises(ConfigError, match="too few to hold out"):
        split_dataset(_Sized(_linear_data(n=4)), 100, np.random.default_rng(0))


def test_rollouts_stop_at_terminations():
    # a model that always predicts obs + 1 and reward 2 (zero weights, tiny std); rollouts
    # end once the observation exceeds 2.5
    spec = DynamicsSpec(1, 1, (4,), 2, 1)
    dyn = Dynamics.create(spec, jax.random.PRNGKey(0))
    dyn = dyn.replace(params=jax.tree_util.tree_map(jnp.zeros_like, dyn.params),
                      out_mean=jnp.array([1.0, 2.0]), out_std=jnp.full(2, 1e-6))
    buffer = ModelBuffer.create(16, 1, 1)
    buffer, info = imagine(lambda obs, key: jnp.zeros_like(obs), dyn, buffer,
                           jnp.array([[0.0], [1.0]]), jax.random.PRNGKey(1), horizon=5,
                           penalty=0.5, gamma=0.9, done_fn=lambda o: o[..., 0] > 2.5)
    n = int(buffer.size)
    assert n == 5 and float(info["rollout_length"]) == 2.5  # 0->1->2->3 and 1->2->3
    obs, nxt = np.asarray(buffer.obs[:n, 0]), np.asarray(buffer.next_obs[:n, 0])
    assert np.allclose(obs, [0, 1, 1, 2, 2], atol=1e-4) and np.allclose(nxt, obs + 1, atol=1e-4)
    assert np.allclose(buffer.discount[:n], np.where(nxt > 2.5, 0.0, 0.9))
    assert np.allclose(buffer.reward[:n], 2.0, atol=1e-4)  # penalty 0.5 * ~1e-6


def test_model_buffer_keeps_the_marked_rows_in_a_ring():
    buf = ModelBuffer.create(4, 1, 1)
    add = jax.jit(ModelBuffer.add)

    def rows(values):
        v = np.asarray(values, np.float32)[:, None]
        return Batch(v, v, v[:, 0], v[:, 0], v)

    buf = add(buf, rows([1, 2, 3]), np.array([True, False, True]))
    assert int(buf.size) == 2 and np.allclose(buf.obs[:2, 0], [1, 3])
    buf = add(buf, rows([4, 5, 6]), np.array([True, True, True]))  # wraps: 6 overwrites 1
    assert int(buf.size) == 4 and int(buf.ptr) == 1
    assert np.allclose(buf.obs[:, 0], [6, 3, 4, 5])
    restored = ModelBuffer.create(4, 1, 1).load_state(buf.state())
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(restored),
                                                    jax.tree_util.tree_leaves(buf)))


def test_known_termination_rules():
    assert termination_fn("HalfCheetah-v5") is None and termination_fn("Pendulum-v1") is None
    assert termination_fn("Hopper-v5") is hopper_done
    hop = np.zeros((5, 11), np.float32)
    hop[:, 0] = 1.25
    hop[1, 0], hop[2, 1], hop[3, 5], hop[4, 2] = 0.6, 0.3, 150.0, np.nan  # fallen, tilted, ...
    assert np.asarray(jax.jit(hopper_done)(hop)).tolist() == [False, True, True, True, True]
    walk = np.zeros((4, 17), np.float32)
    walk[:, 0] = 1.25
    walk[1, 0], walk[2, 0], walk[3, 1] = 0.7, 2.1, -1.2
    assert np.asarray(jax.jit(walker2d_done)(walk)).tolist() == [False, True, True, True]
    ant = np.zeros((4, 27), np.float32)
    ant[:, 0] = [0.55, 0.19, 1.01, 0.2]  # the ant's healthy heights are [0.2, 1.0], ends in
    assert np.asarray(termination_fn("Ant-v5")(ant)).tolist() == [False, True, True, False]


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5",
                                    "InvertedPendulum-v5"])
def test_termination_rules_agree_with_the_envs(env_id):
    """Each rule, on the next observations of random play, says what the env said."""
    import gymnasium as gym
    env = gym.make(env_id)
    rng = np.random.default_rng(0)
    obs, said = [], []
    env.reset(seed=0)
    for _ in range(300):
        o, _, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        obs.append(o)
        said.append(term)
        if term or trunc:
            env.reset(seed=int(rng.integers(1000)))
    rule = np.asarray(jax.jit(termination_fn(env_id))(np.asarray(obs, np.float32)))
    assert rule.tolist() == said
    assert env_id == "Ant-v5" or any(said)  # the ant rarely falls at random: by hand above


# ------------------------------------------------------------------------- whole runs
TINY = dict(dataset_size=2000, hidden=(32, 32), dynamics_hidden=(16, 16), ensemble_size=3,
            elites=2, dynamics_epochs=4, dynamics_patience=10, dynamics_holdout=200,
            rollout_batch_size=64, rollout_every=100, model_buffer_size=2000, batch_size=64,
            horizon=2, steps=200, eval_every=200, eval_episodes=1)


def _agent_bytes(run):
    return bytes(Checkpoint(f"{run}/checkpoints/latest.ckpt")._npz["agent"])


class _StopAfter:
    """A stop flag that lets a loop do ``n`` iterations, then is raised."""

    def __init__(self, n):
        self.n, self.signum = n, None

    @property
    def raised(self):
        self.n -= 1
        return self.n < 0


def _with_a_termination(dataset: str, dest) -> str:
    """A copy of a Minari dataset whose first episode ends in a termination (Pendulum's
    never do: data of another env, or made another way)."""
    from pathlib import Path

    import h5py
    shutil.copytree(dataset, dest)
    (hdf5,) = Path(dest).rglob("*.hdf5")
    with h5py.File(hdf5, "r+") as f:
        episode = f[sorted(k for k in f if k.startswith("episode_"))[0]]
        episode["terminations"][-1], episode["truncations"][-1] = True, False
    return str(dest)


@pytest.fixture(scope="module")
def mopo_run(pendulum_dataset, tmp_path_factory):
    runs = tmp_path_factory.mktemp("mopo")
    return train("mopo", "Pendulum-v1", dict(TINY, dataset=pendulum_dataset, runs_dir=str(runs),
                                           progress=False, tensorboard=False))


def test_mopo_runs_and_resumes_exactly_through_both_phases(mopo_run, pendulum_dataset, tmp_path,
                                                           capsys):
    run = mopo_run["run_dir"]
    assert mopo_run["step"] == 200 and mopo_run["eval"]["normalized_score"] is not None
    with open(f"{run}/dynamics/progress.csv") as f:
        epochs = [int(r["step"]) for r in csv.DictReader(f)]
    assert epochs == [1, 2, 3, 4]
    with open(f"{run}/progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["model_buffer_size"]) == 2 * 2 * 64  # two rollouts of 2 steps
    # interrupted after 2 dynamics epochs, resumed to 100 steps, then to 200
    run_cfg, algo_cfg = build_configs("mopo", "Pendulum-v1", dict(
        TINY, dataset=pendulum_dataset, runs_dir=str(tmp_path), progress=False,
        tensorboard=False))
    other = new_run_dir(str(tmp_path), "mopo", "Pendulum-v1", 0)
    shutil.copy(f"{run}/config.json", other / "config.json")
    out = MOPOLoop(run_cfg, algo_cfg, MOPO, other, algo="mopo")(_StopAfter(2))
    assert out["interrupted"] and out["step"] == 0
    assert "interrupted at dynamics epoch 2 (step 0); checkpoint saved" in capsys.readouterr().out
    train("mopo", None, {"steps": 100}, resume=str(other))
    train("mopo", None, {"steps": 200}, resume=str(other))
    assert _agent_bytes(other) == _agent_bytes(run)
    with open(f"{other}/dynamics/progress.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2, 3, 4]


def test_dynamics_reuse_and_its_refusals(mopo_run, pendulum_dataset, tmp_path, monkeypatch):
    run = mopo_run["run_dir"]
    with monkeypatch.context() as m:  # a relative --dynamics is recorded absolute
        m.chdir(os.path.dirname(run))
        assert build_configs("mopo", "Pendulum-v1", dict(
            TINY, dataset=pendulum_dataset, dynamics=os.path.basename(run)))[1].dynamics \
            == os.path.realpath(run)
    base = dict(TINY, dataset=pendulum_dataset, steps=100, eval_every=100, progress=False,
                tensorboard=False, dynamics=run)
    out = train("mopo", "Pendulum-v1", dict(base, runs_dir=str(tmp_path / "ok")))
    reused = msgpack_restore(_agent_bytes(out["run_dir"]))["dynamics"]
    saved = msgpack_restore(bytes(Checkpoint(f"{run}/dynamics/model.ckpt")._npz["agent"]))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(reused),
                                                    jax.tree_util.tree_leaves(saved)))
    assert not (tmp_path / "ok" / out["run_dir"].split("/")[-1] / "dynamics").exists()
    # it records how the reused ensemble was fitted (its source's settings), not the defaults
    # it never used: a report labels it by them
    from contrl.agents.mopo import FIT_FIELDS, MOPOConfig
    source = read_run_config(run)["algo_config"]
    unsaid = {k: v for k, v in TINY.items() if k not in FIT_FIELDS}
    mine = build_configs("mopo", "Pendulum-v1", dict(unsaid, dataset=pendulum_dataset,
                                                     dynamics=run))[1]
    assert {k: getattr(mine, k) for k in FIT_FIELDS} == {k: source[k] for k in FIT_FIELDS}
    assert mine.dynamics_holdout == 200 != MOPOConfig.dynamics_holdout  # TINY's, not the default
    # the run holds the ensemble it reused: it resumes with its source moved away
    shutil.move(run, tmp_path / "moved")
    try:
        assert train("mopo", None, {"steps": 200}, resume=out["run_dir"])["step"] == 200
    finally:
        shutil.move(tmp_path / "moved", run)
    # ended between two rollouts (250, rollout_every 100): extending it would not be exact
    assert train("mopo", None, {"steps": 250}, resume=out["run_dir"])["step"] == 250
    with pytest.raises(ContrlError, match="ended at step 250, between two model rollouts "
                       r"\(every 100 steps\): it cannot be extended exactly"):
        train("mopo", None, {"steps": 300}, resume=out["run_dir"])
    for over, msg in [({"dataset_size": 1500}, "was trained on dataset"),
                      ({"ensemble_size": 4}, "has another shape: n_models 3 (this run: 4)"),
                      ({"dynamics_epochs": 7, "dynamics_lr": 0.01},
                       "reuses a fitted ensemble, so --dynamics-lr, --dynamics-epochs would not"),
                      ({"dynamics": str(tmp_path)}, "no trained dynamics model at"),
                      ({"dataset": altered_copy(pendulum_dataset, tmp_path / "remade")},
                       "was trained on other transitions than"),
                      ({"dataset": _with_a_termination(pendulum_dataset, tmp_path / "ends"),
                        "dynamics": ""}, "has terminations (1), but contrl knows no "
                       "termination rule for Pendulum-v1: mopo's model rollouts would run on")]:
        with pytest.raises((ContrlError, ConfigError), match=re.escape(msg)):
            train("mopo", "Pendulum-v1", dict(base, runs_dir=str(tmp_path / "bad"), **over))
        bad = tmp_path / "bad"
        assert not bad.exists() or not any(bad.iterdir())  # the failed run left nothing
