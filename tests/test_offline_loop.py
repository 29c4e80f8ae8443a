"""The offline loop: exact resume, the online phase, refusal without a dataset."""
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from contrl.config import ConfigError
from contrl.errors import ContrlError
from contrl.run import Checkpoint, save_checkpoint
from contrl.train import train
from conftest import altered_copy


@pytest.mark.parametrize("algo", ["iql", "td3bc", "cql"])
def test_offline_resume_is_exact(algo, pendulum_dataset, tmp_path, offline_run):
    extra = {"cql": {"n_actions": 2}, "iql": {"actor_decay_steps": 400}}.get(algo, {})
    opts = dict(steps=400, steps_per_call=100, eval_every=200, **extra)
    full = offline_run(algo, pendulum_dataset, tmp_path / "a", **opts)
    half = offline_run(algo, pendulum_dataset, tmp_path / "b", **{**opts, "steps": 200})
    train(algo, None, {"steps": 400}, resume=half["run_dir"])

    def agent_bytes(run):
        return bytes(Checkpoint(f"{run}/checkpoints/latest.ckpt")._npz["agent"])
    assert agent_bytes(full["run_dir"]) == agent_bytes(half["run_dir"])  # identical agents


def test_offline_to_online_phase(pendulum_dataset, tmp_path, offline_run):
    out = offline_run("td3bc", pendulum_dataset, tmp_path, steps=500, online_steps=600,
                      steps_per_call=100, learning_starts=200, update_every=4, eval_every=300, buffer_size=5000)
    online = out["online"]
    assert online["step"] == 600
    assert online["run_dir"].endswith("online")
    with open(f"{online['run_dir']}/progress.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["eval_return"]]
    assert [int(r["step"]) for r in rows] == [300, 600]
    assert all(r["normalized_score"] for r in rows)  # scored against the dataset's references
    # more offline steps once the online phase has begun would be ignored by it: refused
    with pytest.raises(ContrlError, match="online phase has begun"):
        train("td3bc", None, {"steps": 700}, resume=out["run_dir"])
    # so it is once the online phase has a checkpoint, even one at its step 0 (stopped while
    # setting up), from which the online phase would start with the older agent
    latest = Path(online["run_dir"]) / "checkpoints" / "latest.ckpt"
    kept = latest.read_bytes()
    save_checkpoint(latest, {"w": np.zeros(2)}, {"step": 0})
    with pytest.raises(ContrlError, match="online phase has begun"):
        train("td3bc", None, {"steps": 700}, resume=out["run_dir"])
    latest.write_bytes(kept)
    # the online phase is a run of its own for eval, load_policy and report (they read the
    # offline one only), and resuming it is resuming its run
    from contrl.cli import main
    from contrl.report import find_runs, group
    from contrl.rundir import load_policy
    assert main(["eval", online["run_dir"], "--checkpoint", "latest", "--episodes", "1"]) == 0
    import json
    assert json.loads((Path(online["run_dir"]) / "eval-latest.json").read_text())["step"] == 600
    policy = load_policy(online["run_dir"], "latest")
    assert policy.meta["step"] == 600 and policy.run_cfg.steps == 600
    with pytest.raises(ContrlError, match="is the online phase of the run .*: --resume that run"):
        train("td3bc", None, {}, resume=online["run_dir"])
    curves = find_runs([str(tmp_path)])
    assert sorted((c.online, list(c.steps)) for c in curves) == [(False, [300, 500]),
                                                                 (True, [300, 600])]
    assert sorted(label for _, label in group(curves)) == ["td3bc", "td3bc online phase"]
    from contrl.report import report
    assert "online phases are left out of the aggregates (shown per env)" in report(
        [str(tmp_path)], reps=20, figures=False)["notes"]
    from contrl.rundir import export_policies  # its copy gets the config it trained with
    copy = export_policies(online["run_dir"], tmp_path / "exported", which=("latest",))
    assert load_policy(copy, "latest").meta["step"] == 600
    # the online phase may grow on resume (the offline one no longer may), never shrink, and
    # may not appear or vanish (IQL's actor schedule depends on it)
    with pytest.raises(ContrlError, match="online phase is already at step 600, past "
                       "--online-steps 300"):
        train("td3bc", None, {"online_steps": 300}, resume=out["run_dir"])
    with pytest.raises(ConfigError, match="can grow an online phase on resume, not add or "
                       "remove one .this run was started with online_steps 600"):
        train("td3bc", None, {"online_steps": 0}, resume=out["run_dir"])
    # a resume applies only what it may change: a path given again stays recorded absolute
    from contrl.resolve import resumed_configs
    with pytest.MonkeyPatch.context() as m:
        m.chdir(Path(pendulum_dataset).parent)
        again = resumed_configs("td3bc", None, {"dataset": Path(pendulum_dataset).name},
                                Path(out["run_dir"]))[1]
    assert again.dataset == str(Path(pendulum_dataset).resolve())
    assert train("td3bc", None, {"online_steps": 900},
                 resume=out["run_dir"])["online"]["step"] == 900
    # a sweep counts such a run done only when its online phase is
    from contrl.sweep import status
    assert status(Path(out["run_dir"]), 500) == "done"
    (Path(online["run_dir"]) / "checkpoints" / "latest.ckpt").unlink()
    assert status(Path(out["run_dir"]), 500) == "resume"


def test_an_online_phase_without_the_dataset_is_scored_as_the_offline_one(pendulum_dataset,
                                                                           tmp_path, offline_run):
    # offline_ratio 0: its batches take nothing from the dataset, its evaluations are still
    # normalized by the dataset's references (best_metric normalized_score ranked them; it
    # was refused when the online phase began, after the whole offline phase)
    out = offline_run("td3bc", pendulum_dataset, tmp_path, steps=100, steps_per_call=100,
                      online_steps=200, offline_ratio=0.0, learning_starts=100, eval_every=100,
                      best_metric="normalized_score")
    with open(f"{out['online']['run_dir']}/progress.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["eval_return"]]
    assert [int(r["step"]) for r in rows] == [100, 200] and all(
        r["normalized_score"] for r in rows)
    assert (Path(out["online"]["run_dir"]) / "checkpoints" / "best.ckpt").exists()


def test_iql_refuses_steps_past_its_actor_schedule(pendulum_dataset, tmp_path, offline_run):
    # the actor's cosine decay ends at the run's first --steps: more steps froze the actor
    out = offline_run("iql", pendulum_dataset, tmp_path, steps=100, steps_per_call=100,
                      eval_every=100)
    with pytest.raises(ConfigError, match="--steps 200 is past actor_decay_steps 100"):
        train("iql", None, {"steps": 200}, resume=out["run_dir"])


def test_resume_refuses_other_data_under_the_datasets_name(pendulum_dataset, tmp_path,
                                                          offline_run):
    data = tmp_path / "data"
    shutil.copytree(pendulum_dataset, data)
    out = offline_run("td3bc", str(data), tmp_path / "runs", steps=100, steps_per_call=100,
                      eval_every=100)
    shutil.rmtree(data)
    altered_copy(pendulum_dataset, data)  # remade in place: same name and length
    with pytest.raises(ContrlError, match="was trained on other transitions than .*data gives now"):
        train("td3bc", None, {"steps": 200}, resume=out["run_dir"])


def test_runs_without_a_comparable_fingerprint_are_not_checked():
    from types import SimpleNamespace

    from contrl.loops.common import check_same_data
    data = SimpleNamespace(fingerprint="d1:00000000000000aa")
    check_same_data(None, data, "x", "run", "fix")  # a run from before fingerprints
    check_same_data("d0:00000000000000bb", data, "x", "run", "fix")  # another loader version
    check_same_data("d1:00000000000000aa", data, "x", "run", "fix")
    with pytest.raises(ContrlError, match="run was trained on other transitions than x gives "
                                          "now .*; fix$"):
        check_same_data("d1:00000000000000bb", data, "x", "run", "fix")


def test_offline_algorithms_need_a_dataset(tmp_path):
    with pytest.raises(ConfigError, match="needs --dataset"):
        train("iql", "Pendulum-v1", {"runs_dir": str(tmp_path)})


def test_steps_asked_are_steps_done(pendulum_dataset, tmp_path, capsys):
    # 250 gradient steps in chunks of 100: the last chunk is 50
    out = train("bc", "Pendulum-v1", dict(dataset=pendulum_dataset, steps=250, update_every=100,
                                         hidden=(32, 32), eval_episodes=1, runs_dir=str(tmp_path),
                                         progress=False, tensorboard=False, dataset_size=10,
                                         batch_size=64))
    assert out["step"] == 250
    assert "note: 10 transitions, fewer than a batch of 64" in capsys.readouterr().err
    assert Checkpoint(f"{out['run_dir']}/checkpoints/latest.ckpt").meta["step"] == 250


def test_a_run_whose_checkpoints_folder_was_removed_resumes_from_the_start(pendulum_dataset, tmp_path,
                                                                           capsys):
    import shutil
    opts = dict(dataset=pendulum_dataset, steps=100, update_every=100, hidden=(32, 32),
                eval_episodes=1, runs_dir=str(tmp_path), progress=False, tensorboard=False)
    out = train("bc", "Pendulum-v1", opts)
    shutil.rmtree(f"{out['run_dir']}/checkpoints")  # as an empty checkpoints/ does: step 0
    again = train("bc", None, {"steps": 200}, resume=out["run_dir"])
    assert again["step"] == 200
    assert Checkpoint(f"{out['run_dir']}/checkpoints/latest.ckpt").meta["step"] == 200
    config = (Path(out["run_dir"]) / "config.json").read_text()
    with pytest.raises(ContrlError, match="already at step 200, past --steps 100: give --steps "
                       r"above 200 to train it further \(the run is unchanged\)"):
        train("bc", None, {"steps": 100}, resume=out["run_dir"])
    assert (Path(out["run_dir"]) / "config.json").read_text() == config  # steps still 200
