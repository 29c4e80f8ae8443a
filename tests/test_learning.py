"""Short learning tests with fixed seeds (about a minute each on 2 cores)."""
import pytest

from contrl.train import train


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_solves_pendulum_within_15k_steps(algo, tmp_path):
    out = train(algo, "Pendulum-v1", dict(steps=15_000, seed=0, eval_every=15_000,
                                         eval_episodes=10, runs_dir=str(tmp_path),
                                         progress=False, tensorboard=False))
    assert out["eval"]["episodes"] == 10
    assert out["eval"]["mean_return"] >= -250, out["eval"]
