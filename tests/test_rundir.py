"""Saved runs: reading a run's configuration refuses what is not one, with one line."""
import json

import pytest

from contrl.errors import ContrlError
from contrl.run import read_run_config
from contrl.rundir import run_configs


@pytest.mark.parametrize("content,msg", [
    (None, "not a contrl run directory"),
    ("{not json", "is not valid JSON"),
    ('{"algo": "sac", "run": {}}', "missing or malformed: algo_config"),
    ('{"algo": "sac", "run": [], "algo_config": {}}', "not a contrl run configuration"),
    ("[1, 2]", "not a contrl run configuration"),
])
def test_bad_run_configs_are_refused(tmp_path, content, msg):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ContrlError, match=msg):
        read_run_config(tmp_path)


def test_configs_saved_before_the_seeding_split_still_load(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "algo": "sac", "run": {"env": "Pendulum-v1"},
        "algo_config": {"lr": 1e-3, "seed_from": "", "bc_weight": 0.0, "seed_log_std": None}}))
    run_cfg, algo_cfg = run_configs(tmp_path)
    assert run_cfg.env == "Pendulum-v1" and algo_cfg.lr == 1e-3


def test_a_run_seeded_by_an_older_sac_cannot_be_resumed_silently_unseeded(tmp_path):
    from contrl.train import train
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({
        "algo": "sac", "run": {"env": "Pendulum-v1"},
        "algo_config": {"dataset": "hopper-expert-v0", "seed_with_dataset": True,
                        "bc_weight": 1.0}}))
    with pytest.raises(ContrlError, match="seeding is now the seeded_sac algorithm"):
        train("sac", None, {}, resume=str(tmp_path))
