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


@pytest.fixture(scope="session")
def pendulum_expert(tmp_path_factory):
    """A SAC policy trained on Pendulum-v1 for 10k steps (about -150 to -200): the expert of
    the imitation tests. Trained once per test session."""
    from contrl.train import train
    out = train("sac", "Pendulum-v1", dict(steps=10_000, seed=0, eval_every=10_000,
                                          runs_dir=str(tmp_path_factory.mktemp("expert")),
                                          progress=False, tensorboard=False))
    assert out["eval"]["mean_return"] > -300, out["eval"]
    return out["run_dir"]
