import pytest

from contrl.train import build_configs


def tiny_configs(tmp_path, algo="sac", **over):
    """A fast run on Pendulum: small nets, small batch, short warm-up."""
    values = dict(steps=600, learning_starts=200, batch_size=32, hidden=(32, 32),
                  buffer_size=5000, eval_every=300, eval_episodes=2, log_every=100,
                  checkpoint_every=10_000, update_every=4, runs_dir=str(tmp_path),
                  tensorboard=False, progress=False)
    values.update(over)
    return build_configs(algo, "Pendulum-v1", values)


@pytest.fixture
def tiny(tmp_path):
    return lambda **over: tiny_configs(tmp_path, **over)
