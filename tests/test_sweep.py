"""contrl sweep: grid expansion, run states, and a real sweep interrupted, resumed, skipped."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from contrl import config as C
from contrl.errors import ContrlError
from contrl.run import save_checkpoint
from contrl.sweep import (Trial, core_slots, expand, last_step, name_part, option_flags,
                          parse_seeds, parse_sets, status, sweep)


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("0-1,9") == [0, 1, 9]
    assert parse_seeds("2") == [2]
    with pytest.raises(ContrlError, match="is empty"):
        parse_seeds("5-2")
    with pytest.raises(ContrlError, match="cannot read seeds"):
        parse_seeds("a-b")
    with pytest.raises(ContrlError, match="repeat"):
        parse_seeds("1,1")


def test_sets_are_typed_and_checked():
    sets = parse_sets(["sac", "td3"], ["lr=3e-4,1e-3", "hidden=64:64", "tensorboard=false"])
    assert sets == [("lr", ["3e-4", "1e-3"]), ("hidden", ["64:64"]), ("tensorboard", ["false"])]
    with pytest.raises(C.ConfigError, match="--set bogus: unknown option for sac"):
        parse_sets(["sac"], ["bogus=1"])
    with pytest.raises(C.ConfigError, match="init_alpha"):  # a SAC field, unknown to TD3
        parse_sets(["sac", "td3"], ["init_alpha=0.1"])
    with pytest.raises(C.ConfigError, match="expected true or false"):
        parse_sets(["sac"], ["tensorboard=maybe"])
    with pytest.raises(C.ConfigError, match="expected FIELD=VALUE"):
        parse_sets(["sac"], ["lr"])
    with pytest.raises(C.ConfigError, match="--set dataset_size is given twice"):
        parse_sets(["iql"], ["dataset-size=10", "dataset_size=20"])


def test_expand_is_the_full_grid():
    sets = parse_sets(["sac", "td3"], ["lr=3e-4,1e-3", "hidden=64:64"])
    trials = expand(["sac", "td3"], ["Pendulum-v1"], [0, 1], sets)
    assert len(trials) == 2 * 2 * 2
    names = [t.name for t in trials]
    assert names[:4] == ["sac-Pendulum-v1-lr3e-4-s0", "sac-Pendulum-v1-lr3e-4-s1",
                         "sac-Pendulum-v1-lr1e-3-s0", "sac-Pendulum-v1-lr1e-3-s1"]
    t = trials[2]
    assert t.options == {"lr": 1e-3, "hidden": (64, 64), "seed": 0}
    args = t.train_args("d", resume=False)
    assert args[:5] == ["train", "sac", "Pendulum-v1", "--run-dir", "d"]
    assert args[5:] == ["--no-progress", "--lr", "0.001", "--hidden", "64", "64", "--seed", "0"]
    assert t.train_args("d", resume=True)[:4] == ["train", "sac", "--resume", "d"]
    (bare,) = expand(["sac"], ["Pendulum-v1"], [0], [], use_preset=False)
    assert bare.train_args("d", resume=False)[5:7] == ["--no-progress", "--no-preset"]
    with pytest.raises(ContrlError, match="unknown environment"):
        expand(["sac"], ["Pendulum-v9"], [0], [])
    with pytest.raises(C.ConfigError, match="lr must be"):  # checked as contrl train would
        expand(["sac"], ["Pendulum-v1"], [0], parse_sets(["sac"], ["lr=-1"]))


def test_option_flags():
    assert option_flags({"a_b": True, "c": False, "d": (1, 2), "e": None, "f": 3}) == \
        ["--a-b", "--no-c", "--d", "1", "2", "--f", "3"]


def test_status_of_a_run_dir(tmp_path):
    run = tmp_path / "r"
    assert status(run, 100) == "new"
    (run / "checkpoints").mkdir(parents=True)
    config = {"algo": "iql", "run": {"env": "Pendulum-v1"}, "algo_config": {"online_steps": 0}}
    (run / "config.json").write_text(json.dumps(config))
    assert status(run, 100) == "resume"  # killed before its first checkpoint
    save_checkpoint(run / "checkpoints" / "latest.ckpt", {"w": np.zeros(2)}, {"step": 60})
    assert status(run, 100) == "resume"
    assert status(run, 60) == "done"
    (run / "config.json").write_text("{damaged")
    assert status(run, 60) == "resume"  # its resume names the problem in the run's log
    # an offline run with an online phase is done only when that phase is
    config["algo_config"]["online_steps"] = 30
    (run / "config.json").write_text(json.dumps(config))
    assert status(run, 60) == "resume"
    (run / "online" / "checkpoints").mkdir(parents=True)
    save_checkpoint(run / "online" / "checkpoints" / "latest.ckpt", {"w": np.zeros(2)},
                    {"step": 20})
    assert status(run, 60) == "resume"
    save_checkpoint(run / "online" / "checkpoints" / "latest.ckpt", {"w": np.zeros(2)},
                    {"step": 30})
    assert status(run, 60) == "done"
    (run / "progress.csv").write_text("step,time\n10,0.1\n60,0.5\n70,0")
    assert last_step(run) == 70


def test_a_run_that_would_refuse_to_continue_stops_the_sweep_before_any_starts(tmp_path):
    import h5py

    from contrl.resolve import build_configs
    data = tmp_path / "p.hdf5"
    with h5py.File(data, "w") as f:  # a tiny Pendulum dataset
        f["observations"], f["actions"] = np.zeros((8, 3), "f4"), np.zeros((8, 1), "f4")
        f["rewards"], f["terminals"] = np.zeros(8, "f4"), np.zeros(8, bool)
        f["timeouts"] = np.eye(1, 8, 7, dtype=bool)[0]
    sets = [f"dataset={data}", "steps=100"]
    (trial,) = expand(["iql"], ["Pendulum-v1"], [0], parse_sets(["iql"], sets))
    run_cfg, algo_cfg = build_configs("iql", "Pendulum-v1", trial.options)  # as train has it
    run = tmp_path / "sw" / trial.name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(
        {"algo": "iql", "run": C.to_dict(run_cfg), "algo_config": C.to_dict(algo_cfg)}))
    save_checkpoint(run / "checkpoints" / "latest.ckpt", {"w": np.zeros(2)}, {"step": 50})
    # IQL's actor decays over the run's first 100 steps: continuing it to 200 is refused
    for dry_run in (True, False):
        with pytest.raises(ContrlError, match=f"{trial.name} cannot be continued: --steps 200 "
                                              "is past actor_decay_steps 100"):
            sweep(["iql"], ["Pendulum-v1"], "0", [f"dataset={data}", "steps=200"],
                  str(tmp_path / "sw"), show=False, dry_run=dry_run)
    assert not (tmp_path / "sw" / "logs").exists()  # nothing started
    # a run that has begun is checked as its resume will be, not as a new run: a setting
    # refused for new runs since it began (say) does not stop its sweep
    sets = [f"dataset={data}", "online_steps=1000", "actor_decay_steps=500", "steps=100"]
    with pytest.raises(C.ConfigError, match="--actor-decay-steps: with --online-steps"):
        expand(["iql"], ["Pendulum-v1"], [0], parse_sets(["iql"], sets))
    run_cfg, algo_cfg = build_configs("iql", "Pendulum-v1", {
        "dataset": str(data), "online_steps": 1000, "actor_decay_steps": 500, "steps": 100},
        new_run=False)
    run = tmp_path / "sw2" / trial.name
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(
        {"algo": "iql", "run": C.to_dict(run_cfg), "algo_config": C.to_dict(algo_cfg)}))
    plan = sweep(["iql"], ["Pendulum-v1"], "0", sets, str(tmp_path / "sw2"), show=False,
                 dry_run=True)
    assert plan["todo"] == [trial.name]


def test_core_slots_are_disjoint():
    cores = sorted(os.sched_getaffinity(0))
    slots = core_slots(len(cores), 1)
    assert [s[0] for s in slots] == cores and all(len(s) == 1 for s in slots)


# the suite's tiny SAC (tests/conftest.py), so that the shared compilation cache serves it
TINY = ["--set", "learning_starts=200", "--set", "hidden=32:32", "--set", "batch_size=32",
        "--set", "buffer_size=5000", "--set", "eval_every=2000", "--set", "eval_episodes=1", "--set", "checkpoint_every=500",
        "--set", "log_every=100", "--set", "tensorboard=false", "--set", "update_every=4"]


def test_sweep_interrupted_resumed_then_skipped(tmp_path, monkeypatch):
    """Ctrl-C stops every run with a checkpoint (exit 130); the same command resumes them to
    the end; once more, it finds them all finished and starts nothing."""
    root = tmp_path / "sw"
    argv = ["sac", "Pendulum-v1", "--seeds", "0-1", "--steps", "4000", "--dir", str(root),
            "--jobs", "2", "--no-progress", *TINY]
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", jax.config.jax_compilation_cache_dir)
    proc = subprocess.Popen([sys.executable, "-m", "contrl.cli", "sweep", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = [root / "sac-Pendulum-v1-s0", root / "sac-Pendulum-v1-s1"]
    deadline = time.time() + 240  # generous: two JAX compiles on a loaded 2-core machine
    while time.time() < deadline and not all(last_step(r) >= 300 for r in runs):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "run the same command again" in out
    steps = [last_step(r) for r in runs]
    stopped = [r for r, s in zip(runs, steps) if s < 4000]  # under load one may have finished
    assert stopped and all(300 <= s <= 4000 for s in steps), steps
    assert all((r / "checkpoints" / "latest.ckpt").exists() for r in runs)

    summary = sweep(["sac"], ["Pendulum-v1"], "0-1", [*_sets(), "steps=4000"], str(root),
                    jobs=2, show=False)
    assert summary["finished"] == [r.name for r in stopped]
    assert summary["failed"] == {}
    for r in runs:
        assert last_step(r) == 4000
    for r in stopped:
        log = (root / "logs" / f"{r.name}.log").read_text()
        assert "--resume" in log and "step 4000" in log
    again = sweep(["sac"], ["Pendulum-v1"], "0-1", [*_sets(), "steps=4000"], str(root),
                  jobs=2, show=False)
    assert again["done_before"] == ["sac-Pendulum-v1-s0", "sac-Pendulum-v1-s1"]
    assert again["todo"] == [] and again["finished"] == []


def _sets():
    return [TINY[i + 1] for i in range(0, len(TINY), 2)]


def test_a_sweep_dir_holds_one_sweep(tmp_path):
    root = tmp_path / "sw"
    sets = _sets()
    root.mkdir()
    (root / "sweep.json").write_text(json.dumps({"algos": ["td3"]}))
    (root / "td3-Pendulum-v1-s0").mkdir()
    (root / "td3-Pendulum-v1-s0" / "config.json").write_text("{}")  # one of its runs began
    with pytest.raises(ContrlError, match="holds another sweep"):
        sweep(["sac"], ["Pendulum-v1"], "0", sets, str(root), show=False)
    plan = sweep(["sac"], ["Pendulum-v1"], "0-2", sets, str(tmp_path / "new"), dry_run=True)
    assert plan["todo"] == [f"sac-Pendulum-v1-s{s}" for s in range(3)]
    assert not (tmp_path / "new").exists()


def test_a_path_value_names_one_folder():
    """--set dataset=/data/a.hdf5,/other/a.hdf5: each run directory is one folder, the two
    names differ; plain values keep the names they always had."""
    a, b = name_part("/data/a.hdf5"), name_part("/other/a.hdf5")
    assert a.startswith("a.hdf5~") and b.startswith("a.hdf5~") and a != b
    assert "/" not in a + b + name_part("runs/x/") + name_part("..")
    assert name_part("0.001") == "0.001" and name_part("dmc:walker") == "dmcxwalker"


def test_a_sweep_dir_is_run_by_one_sweep_at_a_time(tmp_path):
    from contrl.run import DirLock
    root = tmp_path / "sw"
    root.mkdir()
    with DirLock(root, "contrl sweep"):  # another sweep running in this folder
        with pytest.raises(ContrlError, match="in use by another contrl sweep"):
            sweep(["sac"], ["Pendulum-v1"], "0", _sets(), str(root), show=False)
        # a dry run only reads: it goes on
        assert sweep(["sac"], ["Pendulum-v1"], "0", _sets(), str(root), dry_run=True)["todo"]
    assert not (root / "sweep.json").exists() and not any(root.glob("sac-*"))


def test_a_sweep_dir_takes_more_seeds(tmp_path):
    from contrl.sweep import prepare
    spec = {"algos": ["sac"], "envs": ["Pendulum-v1"], "seeds": [0], "sets": [],
            "preset": True, "steps": None}
    prepare(tmp_path, spec)
    prepare(tmp_path, {**spec, "seeds": [2, 1]})
    assert json.loads((tmp_path / "sweep.json").read_text())["seeds"] == [0, 1, 2]
    # none of its runs began (all refused, say): a corrected sweep takes the folder
    prepare(tmp_path, {**spec, "envs": ["Hopper-v5"], "seeds": [3]})
    assert json.loads((tmp_path / "sweep.json").read_text())["envs"] == ["Hopper-v5"]
    (tmp_path / "sac-Hopper-v5-s3").mkdir()
    (tmp_path / "sac-Hopper-v5-s3" / "config.json").write_text("{}")
    with pytest.raises(ContrlError, match="holds another sweep"):
        prepare(tmp_path, {**spec, "seeds": [3]})


def test_ray_missing_or_unreachable(monkeypatch, tmp_path):
    from contrl.sweep_ray import check_address, run_with_ray
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ContrlError, match="--ray needs Ray"):
        run_with_ray(tmp_path, [])
    with pytest.raises(ContrlError, match="cannot reach the Ray cluster at RAY_ADDRESS=127.0.0.1:1"):
        check_address("127.0.0.1:1")
    with pytest.raises(ContrlError, match="is not host:port"):
        check_address("nowhere")
    check_address("auto")  # Ray finds the cluster itself


@pytest.mark.skipif(not __import__("importlib").util.find_spec("ray"),
                    reason="Ray is an optional extra (pip install 'contrl[ray]')")
def test_ray_local_mode_matches_the_local_sweep(tmp_path, monkeypatch):
    """The same trials through Ray Tune (a local Ray instance) give the same runs, row for row
    (timing columns aside), as the local runner."""
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", jax.config.jax_compilation_cache_dir)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    sets = [*_sets(), "steps=400"]
    local = sweep(["sac"], ["Pendulum-v1"], "0-1", sets, str(tmp_path / "local"), show=False)
    ray_ = sweep(["sac"], ["Pendulum-v1"], "0-1", sets, str(tmp_path / "ray"), ray=True)
    assert local["finished"] == ray_["finished"] == ["sac-Pendulum-v1-s0", "sac-Pendulum-v1-s1"]
    def rows(where, name):  # progress.csv without its time and steps/s columns
        lines = (tmp_path / where / name / "progress.csv").read_text().splitlines()
        return [(lambda c: [c[0]] + c[3:])(line.split(",")) for line in lines]

    for name in local["finished"]:
        assert rows("local", name) == rows("ray", name)
