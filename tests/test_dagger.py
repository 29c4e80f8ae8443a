"""DAgger: beta schedules, resume of the aggregated data, learning on Pendulum."""
import numpy as np
import pytest

from contrl.agents.dagger import DAggerConfig, beta
from contrl.config import ConfigError
from contrl.run import Checkpoint


def test_beta_schedules():
    assert [beta("exponential", 0.5, i) for i in range(4)] == [1.0, 0.5, 0.25, 0.125]
    assert [beta("linear", 0.3, i) for i in range(5)] == pytest.approx([1.0, 0.7, 0.4, 0.1, 0.0])


def test_config_errors():
    with pytest.raises(ConfigError, match="beta_schedule"):
        DAggerConfig(beta_schedule="cosine").validate()
    with pytest.raises(ConfigError, match="--expert"):
        DAggerConfig().check_run(None)


@pytest.mark.slow
def test_dagger_learns_pendulum_and_resumes(pendulum_expert, tmp_path):
    from contrl.train import train
    opts = dict(expert=pendulum_expert, steps=2000, steps_per_round=500, updates_per_round=500,
                eval_every=500, runs_dir=str(tmp_path), progress=False, tensorboard=False)
    half = train("dagger", "Pendulum-v1", {**opts, "steps": 1000}, run_dir=str(tmp_path / "d"))
    assert half["step"] == 1000
    out = train("dagger", None, {"steps": 4000}, resume=str(tmp_path / "d"))
    ckpt = Checkpoint(tmp_path / "d" / "checkpoints" / "latest.ckpt")
    labels = ckpt.arrays("data/")
    assert len(labels["data/obs"]) == len(labels["data/actions"]) == 4000  # aggregated, resumed
    assert np.abs(labels["data/actions"]).max() <= 1.0
    assert out["eval"]["mean_return"] > -400, out["eval"]
