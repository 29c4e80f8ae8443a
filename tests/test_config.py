import dataclasses

import pytest

from contrl import config as C
from contrl.registry import REGISTRY
from contrl.train import build_configs


@pytest.mark.parametrize("cls", [C.RunConfig] + [v[0] for v in REGISTRY.values()])
def test_every_field_has_a_docstring(cls):
    docs = C.field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing


def test_precedence_defaults_preset_overrides():
    run, algo = build_configs("sac", "Pendulum-v1", {})
    assert algo.learning_starts == 1000 and run.steps == 20000  # from presets/sac.toml
    run, algo = build_configs("sac", "Pendulum-v1", {"learning_starts": 50, "lr": 1e-3})
    assert algo.learning_starts == 50 and algo.lr == 1e-3
    run, algo = build_configs("sac", "Pendulum-v1", {}, use_preset=False)
    assert algo.learning_starts == 10_000


def test_evaluation_episodes_default_by_env():
    """Mazes report a success rate, which needs 100 episodes; other envs 10; a flag wins."""
    assert build_configs("sac", "AntMaze_UMaze-v5", {})[0].eval_episodes == 100
    assert build_configs("td3", "PointMaze_Medium-v3", {})[0].eval_episodes == 100
    assert build_configs("sac", "Hopper-v5", {})[0].eval_episodes == 10
    assert build_configs("sac", "AntMaze_UMaze-v5", {"eval_episodes": 7})[0].eval_episodes == 7
    assert build_configs("sac", "AntGoal-v2", {})[0].eval_episodes == 50  # its preset


@pytest.mark.parametrize("over, msg", [
    ({"lr": -1.0}, "lr must be in"),
    ({"batch_size": 512, "buffer_size": 100}, "larger than buffer_size"),
    ({"gamma": 1.5}, "gamma must be in"),
    ({"steps": 0}, "steps must be positive"),
    ({"hidden": (0,)}, "hidden"),
    ({"not_a_field": 1}, "unknown option"),
])
def test_invalid_values_are_rejected(over, msg):
    with pytest.raises(C.ConfigError, match=msg):
        build_configs("sac", "Pendulum-v1", over)


def test_presets_only_name_real_fields():
    for algo, (cls, _, _) in REGISTRY.items():
        names = {f.name for f in dataclasses.fields(cls)} | {f.name for f in dataclasses.fields(C.RunConfig)}
        for env_id, values in C.load_presets(algo).items():
            assert set(values) <= names, (algo, env_id)


def test_the_offline_maze_presets_cover_the_same_mazes():
    """CQL's antmaze preset (reward r - 1, Lagrange) covered only the _Fixed and _D4RL mazes:
    on the others CQL trained silently with the locomotion settings."""
    mazes = {algo: {e for e, v in C.load_presets(algo).items()
                    if v.get("reward_normalization") == "antmaze"} for algo in ("iql", "cql")}
    assert mazes["iql"] == mazes["cql"] and "AntMaze_Medium_Diverse_GR-v5" in mazes["cql"]


def test_coerce_reads_saved_values_as_the_declared_types():
    from contrl.agents.sac import SACConfig
    assert C.coerce(SACConfig, "hidden", [64, 64]) == (64, 64)
    assert C.coerce(SACConfig, "target_entropy", None) is None
    assert C.coerce(C.RunConfig, "obs_keys", ["observation"]) == ("observation",)
    with pytest.raises(C.ConfigError, match="must be true or false"):
        C.coerce(SACConfig, "autotune_alpha", "yes")
    with pytest.raises(C.ConfigError, match="cannot read"):
        C.coerce(SACConfig, "lr", "fast")
    # whole numbers from Python or TOML are read (1e4 is 10000); a fraction or a bool given to
    # a count was truncated silently (batch_size 2.5 -> 2, steps True -> 1)
    assert C.coerce(C.RunConfig, "steps", 1e4) == 10_000
    assert C.coerce(SACConfig, "hidden", [64.0, 64]) == (64, 64)
    import numpy as np
    assert C.coerce(C.RunConfig, "steps", np.float32(100)) == 100
    for name, value in (("batch_size", 2.5), ("steps", True), ("hidden", [64, 0.5]),
                        ("batch_size", np.float32(2.5)), ("steps", np.True_)):
        with pytest.raises(C.ConfigError, match=f"{name} must be a whole number, got"):
            C.coerce(C.RunConfig if name == "steps" else SACConfig, name, value)


def test_a_preset_group_gives_its_values_to_each_env(tmp_path, monkeypatch):
    (tmp_path / "sac.toml").write_text(
        '[mazes]\nenvs = ["A-v0", "B-v0"]\nlr = 0.001\n\n["B-v0"]\nbatch_size = 64\n')
    monkeypatch.setattr(C, "PRESET_DIR", tmp_path)
    C.load_presets.cache_clear()
    try:
        assert C.load_presets("sac") == {"A-v0": {"lr": 0.001},
                                         "B-v0": {"lr": 0.001, "batch_size": 64}}
    finally:
        C.load_presets.cache_clear()


def test_path_options_are_recorded_absolute(tmp_path, monkeypatch):
    """A dataset file, an expert run (DAgger's, seeded SAC's) or a dynamics model given by a relative path is recorded
    absolute (config.json then names it from any directory); a dataset id is kept as given.
    On resume, the same path given again (relative or not) is no change."""
    import json

    from contrl.train import resumed_configs
    (tmp_path / "data.hdf5").write_bytes(b"")
    (tmp_path / "expert").mkdir()
    monkeypatch.chdir(tmp_path)
    run, algo = build_configs("iql", "Hopper-v5", {"dataset": "data.hdf5"})
    assert algo.dataset == str(tmp_path / "data.hdf5")
    assert build_configs("iql", "Hopper-v5", {"dataset": "hopper-medium-v1"})[1].dataset \
        == "hopper-medium-v1"
    assert build_configs("dagger", "Pendulum-v1", {"expert": "expert"})[1].expert \
        == str(tmp_path / "expert")
    assert build_configs("seeded_sac", "Pendulum-v1", {"seed_from": "expert"})[1].seed_from \
        == str(tmp_path / "expert")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(
        {"algo": "iql", "run": C.to_dict(run), "algo_config": C.to_dict(algo)}))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert resumed_configs("iql", None, {"dataset": "../data.hdf5"}, tmp_path / "run")[1] \
        .dataset == str(tmp_path / "data.hdf5")
    with pytest.raises(C.ConfigError, match="cannot change dataset"):
        resumed_configs("iql", None, {"dataset": "data.hdf5"}, tmp_path / "run")


def test_a_field_added_with_a_new_default_reads_old_runs_as_they_were(tmp_path):
    """A2C's RMSprop epsilon moved outside the square root (PyTorch's) with a new field; a run
    saved before the field trained with it inside, and resumes and evaluates so."""
    import json

    from contrl.rundir import run_configs
    from contrl.train import build_configs
    new_run, new_algo = build_configs("a2c", "Pendulum-v1", {"runs_dir": str(tmp_path)})
    assert new_algo.eps_in_sqrt is False
    saved = {"algo": "a2c", "run": C.to_dict(new_run), "algo_config": C.to_dict(new_algo)}
    del saved["algo_config"]["eps_in_sqrt"]  # as written before the field existed
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(saved))
    assert run_configs(tmp_path / "old")[1].eps_in_sqrt is True
    # resumed giving the value it was trained with: not a change
    from contrl.resolve import resumed_configs
    assert resumed_configs("a2c", None, {"eps_in_sqrt": True}, tmp_path / "old")[1].eps_in_sqrt
    with pytest.raises(C.ConfigError, match="cannot change eps_in_sqrt"):
        resumed_configs("a2c", None, {"eps_in_sqrt": False}, tmp_path / "old")
    # PPO's adam has no such epsilon: setting it is refused, not ignored
    with pytest.raises(C.ConfigError, match="the optimizer is adam"):
        build_configs("ppo", "Pendulum-v1", {"eps_in_sqrt": False})
