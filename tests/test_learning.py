"""Short learning tests with fixed seeds: SAC and TD3 solve Pendulum-v1 (2x64 networks, 10k
steps; 10-15 s each on 2 cores). DDPG is TD3's agent with other defaults (tests/test_td3.py);
its Pendulum curves are in benchmarks/results/learning_pendulum."""
import json
from pathlib import Path

import pytest

from contrl.train import train


@pytest.mark.slow
def test_sac_solves_pendulum(pendulum_expert):
    """The shared expert of the imitation tests is SAC's learning test: 10k steps, 2x64."""
    ev = json.loads((Path(pendulum_expert) / "eval.json").read_text())
    assert ev["episodes"] == 10 and ev["step"] == 10_000
    assert ev["mean_return"] >= -250, ev


@pytest.mark.slow
@pytest.mark.parametrize("algo,steps", [("td3", 10_000)])
def test_solves_pendulum(algo, steps, tmp_path):
    out = train(algo, "Pendulum-v1", dict(steps=steps, seed=0, eval_every=steps,
                                         eval_episodes=10, hidden=(64, 64),
                                         runs_dir=str(tmp_path), progress=False,
                                         tensorboard=False))
    assert out["eval"]["episodes"] == 10
    assert out["eval"]["mean_return"] >= -250, out["eval"]
