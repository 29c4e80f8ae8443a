from pathlib import Path

import jax
import pytest

from contrl.train import build_configs

# One on-disk compilation cache for the suite's two pytest-xdist workers (and later runs):
# both compile the same small agents, and compiling, not training, is most of the suite's time.
jax.config.update("jax_compilation_cache_dir",
                  str(Path(__file__).resolve().parent.parent / ".pytest_cache" / "jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)


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
    """A SAC policy (2x64) trained on Pendulum-v1 for 10k steps, seed 0: the off-policy
    learning test (tests/test_learning.py checks its evaluation) and the expert of the
    imitation and offline tests. Trained once per test session (about 15 s)."""
    from contrl.train import train
    out = train("sac", "Pendulum-v1", dict(steps=10_000, seed=0, eval_every=10_000,
                                          hidden=(64, 64),
                                          runs_dir=str(tmp_path_factory.mktemp("expert")),
                                          progress=False, tensorboard=False))
    assert out["eval"]["mean_return"] > -300, out["eval"]
    return out["run_dir"]


@pytest.fixture(scope="session")
def pendulum_dataset(pendulum_expert, tmp_path_factory):
    """20k transitions of the Pendulum expert with N(0, 0.3^2) action noise, as a Minari
    dataset directory (pass its path as ``dataset``)."""
    import os

    from contrl.rundir import collect_run
    root = tmp_path_factory.mktemp("minari")
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        out = collect_run(pendulum_expert, "pendulum-noisy-v0", 20_000, noise=0.3)
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH")
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
    return out["path"]


@pytest.fixture
def offline_run():
    """Train an offline algorithm on a dataset for a few steps on Pendulum-v1 (small nets)."""
    from contrl.train import train

    def run(algo, dataset, runs_dir, **over):
        values = dict(dataset=dataset, steps=1000, eval_every=500, eval_episodes=2,
                      steps_per_call=250, hidden=(32, 32), batch_size=64, runs_dir=str(runs_dir),
                      progress=False, tensorboard=False)
        values.update(over)
        return train(algo, "Pendulum-v1", values)
    return run


def altered_copy(dataset: str, dest) -> str:
    """A copy of a Minari dataset directory with one reward changed: same name, same length,
    other data (as a dataset remade under its id would be)."""
    import os
    import shutil
    from pathlib import Path

    import h5py
    shutil.copytree(dataset, dest)
    (hdf5,) = Path(dest).rglob("*.hdf5")
    with h5py.File(hdf5, "r+") as f:
        episode = sorted(k for k in f if k.startswith("episode_"))[0]
        f[episode]["rewards"][0] += 1.0
    stat = hdf5.stat()
    os.utime(hdf5, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later file
    return str(dest)
