"""The on-policy loop: exact resume, normalizers in checkpoints, and PPO/A2C learning."""
import jax
import numpy as np
import pytest

from contrl.run import Checkpoint
from contrl.rundir import load_agent
from contrl.train import train

FAST = dict(runs_dir=None, progress=False, tensorboard=False, eval_episodes=2, log_every=512,
            checkpoint_every=100_000, hidden=(16, 16))


def _train(tmp_path, algo, name, steps, resume=None, **over):
    opts = {**FAST, "runs_dir": str(tmp_path), "steps": steps, **over}
    if resume:
        opts = {k: v for k, v in opts.items() if k in ("steps", "progress", "tensorboard")}
        return train(algo, None, opts, resume=str(resume))
    return train(algo, "Pendulum-v1", opts, run_dir=str(tmp_path / name))


def _leaves(run_dir):
    agent = load_agent(run_dir, "latest")[0]
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(agent)]


@pytest.mark.parametrize("algo,over", [
    ("ppo", dict(rollout_steps=128, minibatches=4, epochs=2, eval_every=512)),
    ("a2c", dict(rollout_steps=8, num_envs=4, eval_every=512)),
])
def test_resume_gives_identical_agent(tmp_path, algo, over):
    # 1024 steps straight vs 512 (mid-episode: Pendulum episodes are 200 steps), then resume.
    # (lr annealing is off: its schedule depends on the run's total steps, which differ here)
    over = {**over, "anneal_lr": False}
    straight = _train(tmp_path, algo, "a", 1024, **over)
    _train(tmp_path, algo, "b", 512, **over)
    resumed = _train(tmp_path, algo, "b", 1024, resume=tmp_path / "b")
    assert straight["step"] == resumed["step"] == 1024
    for x, y in zip(_leaves(tmp_path / "a"), _leaves(tmp_path / "b")):
        np.testing.assert_array_equal(x, y)
    assert straight["eval"]["returns"] == resumed["eval"]["returns"]


def test_checkpoints_restore_the_normalizers(tmp_path):
    _train(tmp_path, "ppo", "n", 512, rollout_steps=256, minibatches=4, epochs=1, eval_every=512)
    agent, run_cfg, _, meta = load_agent(tmp_path / "n", "latest")
    assert meta["step"] == 512
    assert float(agent.obs_stats.count) == pytest.approx(512, abs=1e-3)  # 2 rollouts merged
    assert np.all(np.asarray(agent.obs_stats.var) != 1.0)
    assert float(agent.return_stats.count) == pytest.approx(512, abs=1e-3)
    # evaluation uses them: the loaded policy's action is mean(normalize(obs)) clipped
    obs = np.asarray([[1.0, 0.0, 0.5]], np.float32)
    x = np.clip((obs - agent.obs_stats.mean) / np.sqrt(agent.obs_stats.var + 1e-8), -10, 10)
    mean = agent.policy.apply_fn(agent.policy.params, x)[0]
    np.testing.assert_allclose(agent.eval_actions(obs)[0], np.clip(mean, -1, 1), rtol=1e-5)
    ckpt = Checkpoint(tmp_path / "n" / "checkpoints" / "latest.ckpt")
    assert ckpt.state()["step"] == 512 and not ckpt.arrays("buffer/")


def test_reinforce_configuration_runs(tmp_path):
    out = _train(tmp_path, "a2c", "r", 400, reward_to_go=False, use_baseline=False,
                 normalize_advantages=False, rollout_steps=200, eval_every=400)
    assert out["step"] == 400 and np.isfinite(out["eval"]["mean_return"])


@pytest.mark.slow
@pytest.mark.parametrize("algo,steps,over", [
    ("ppo", 40_000, {"num_envs": 4, "rollout_steps": 512}),  # the preset's 2048-step batches
    ("a2c", 60_000, {}),  # preset: 16 envs x 5 steps
])
def test_solves_inverted_pendulum(tmp_path, algo, steps, over):
    # lr annealed over `steps`
    out = train(algo, "InvertedPendulum-v5", dict(steps=steps, seed=0, eval_every=steps,
                                                  runs_dir=str(tmp_path), progress=False,
                                                  tensorboard=False, **over))
    assert out["eval"]["mean_return"] >= 950, out["eval"]


def test_steps_asked_are_steps_done(tmp_path):
    # rollouts of 64 x 2 envs = 128 steps: 200 steps end with a rollout of 36 x 2
    out = _train(tmp_path, "ppo", "s", 200, rollout_steps=64, num_envs=2, minibatches=4,
                 eval_every=1000)
    assert out["step"] == 200 and not out["interrupted"]
