import json
import subprocess
import sys

import pytest

from contrl.cli import main
from contrl.seeding import stream_seed


@pytest.mark.parametrize("argv, msg", [
    (["train", "sacc", "Hopper-v5"], "unknown algorithm 'sacc'"),
    (["train", "sac", "HalfCheeta-v5"], "closest: HalfCheetah-v5"),
    (["train", "sac", "Hopper-v5", "--lr", "-1"], "lr must be in"),
    (["train", "sac", "Hopper-v5", "--batch-size", "512", "--buffer-size", "100"], "larger than"),
    (["train", "sac", "CartPole-v1"], "continuous"),
    (["eval", "/nonexistent/run"], "not a contrl run directory"),
    (["train", "ppo", "Hopper-v5", "--minibatches", "5000"], "cannot be split into 5000"),
    (["train", "a2c", "Hopper-v5", "--gae-lambda", "2"], "gae_lambda must be in"),
    (["train", "ppo", "Hopper-v5", "--optimizer", "sgd"], "optimizer must be adam or rmsprop"),
    (["train", "sac", "Pendulum-v1", "--seeds", "0-99999999999"], "at most 1000 at once"),
    (["train", "sac", "phys2d/Pendulum-v0"], "functional JAX envs"),
    (["train", "sac", "--resume", "/no/run", "Pendulum-v1"], "Pendulum-v1 is an environment id"),
])
def test_bad_input_is_one_line_error(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_a_failed_start_leaves_nothing_in_a_run_dir_the_user_made(tmp_path, capsys):
    """A dataset that does not exist, a buffer far past the memory: one line each, and the
    empty --run-dir given stays empty (it did not become a run that --resume would take)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main(["train", "iql", "Pendulum-v1", "--dataset", "pendulum-typo-v0",
                 "--run-dir", str(mine), "--steps", "50", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no dataset 'pendulum-typo-v0'" in err and len(err.splitlines()) == 1
    assert mine.is_dir() and not any(mine.iterdir())
    assert main(["train", "sac", "Pendulum-v1", "--buffer-size", "1000000000000000",
                 "--run-dir", str(mine), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "out of memory: Unable to allocate" in err and len(err.splitlines()) == 1
    assert not any(mine.iterdir())


def test_unknown_flag_is_rejected():
    proc = subprocess.run([sys.executable, "-m", "contrl.cli", "train", "sac", "Hopper-v5",
                           "--bogus", "1"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "contrl train sac: error" in proc.stderr  # the subcommand's usage, not contrl's


@pytest.mark.parametrize("argv, usage, msg", [
    (["train", "sac", "--env", "Hopper-v5"], "usage: contrl train sac",
     "unrecognized arguments: --env; the environment is given without a flag"),
    (["eval", "run", "--n-episodes", "3"], "usage: contrl eval",
     "unrecognized arguments: --n-episodes 3"),
    (["datasets", "--all"], "usage: contrl datasets", "unrecognized arguments: --all"),
    (["train", "ppo", "InvertedPendulum-v5", "--normalise-obs"], "usage: contrl train ppo",
     "unrecognized arguments: --normalise-obs; did you mean --normalize-obs?"),
])
def test_unknown_flag_names_its_subcommand(argv, usage, msg, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith(usage) and msg in err


def test_a_bad_value_gets_a_short_usage_and_one_error_line(capsys):
    """Not the usage of all fifty flags of `train sac`: one line pointing to --help, then
    the error."""
    with pytest.raises(SystemExit) as exit_:
        main(["train", "sac", "Pendulum-v1", "--lr", "abc"])
    err = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and err == [
        "usage: contrl train sac ... (`contrl train sac --help` lists the options)",
        "contrl train sac: error: argument --lr: invalid float value: 'abc'"]


def test_help_shows_documented_hyperparameters():
    proc = subprocess.run([sys.executable, "-m", "contrl.cli", "train", "sac", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0
    out = " ".join(proc.stdout.split())
    assert "--batch-size INT Transitions per gradient step." in out
    assert "--utd-ratio" in out and "--resume RUN_DIR" in out


def test_list_shows_algorithms_envs_presets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "sac" in out and "Humanoid-v5" in out and "Pendulum-v1" in out and "presets" in out
    # an algorithm's line is its config's whole first paragraph, not its docstring's first line
    iql = next(line for line in out.splitlines() if line.split()[:1] == ["iql"])
    assert iql.endswith("(defaults: the paper's locomotion setting, with observations "
                        "standardized as CORL does; the paper's code does not: "
                        "--no-normalize-obs).")


def test_train_eval_resume_roundtrip(tmp_path, capsys, monkeypatch):
    # the tiny configuration of tests/conftest.py, so that its compiled update is reused
    common = ["--learning-starts", "100", "--batch-size", "32", "--hidden", "32", "32",
              "--update-every", "4", "--buffer-size", "5000", "--eval-every", "200",
              "--eval-episodes", "2", "--runs-dir", str(tmp_path), "--no-progress",
              "--no-tensorboard"]
    assert main(["train", "sac", "Pendulum-v1", "--steps", "200", *common]) == 0
    run = next(tmp_path.iterdir())
    # what a kill during writes leaves: removed on resume (the files they replaced are intact)
    stale = [run / ".config.json.x1.tmp", run / "checkpoints" / ".latest.ckpt.x2.tmp",
             run / "videos" / ".step-200.tmp.mp4", run / "dynamics" / ".model.ckpt.x3.tmp"]
    for f in stale:
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"partial")
    # while another process trains the run: refused, its config and files untouched
    from contrl.run import DirLock
    before = (run / "config.json").read_bytes()
    with DirLock(run):
        assert main(["train", "sac", "--resume", str(run), "--steps", "300"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is in use by another contrl process" in err and len(err.splitlines()) == 1
    assert (run / "config.json").read_bytes() == before and all(f.exists() for f in stale)
    assert main(["train", "sac", "--resume", str(run), "--steps", "300", "--no-progress"]) == 0
    assert not any(f.exists() for f in stale)
    assert main(["train", "sac", "--resume", str(run), "--lr", "0.1"]) == 2
    assert "cannot change lr" in capsys.readouterr().err
    # refused after config.json was written (Pendulum has no MuJoCo frames): put back as it was
    monkeypatch.setenv("MUJOCO_GL", "egl")  # the GL question is not this test's
    monkeypatch.setenv("PYOPENGL_PLATFORM", "egl")
    before = (run / "config.json").read_bytes()
    assert main(["train", "sac", "--resume", str(run), "--steps", "400", "--video-every",
                 "100"]) == 2
    assert "not rendered by MuJoCo" in capsys.readouterr().err
    assert (run / "config.json").read_bytes() == before
    assert main(["eval", str(run), "--episodes", "3", "--checkpoint", "latest"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["episodes"] == 3 and out["step"] == 300
    # held out: not the episodes that chose best.ckpt
    assert out["seed"] is None and out["first_episode_seed"] == stream_seed(0, "held_out_envs")
    assert main(["eval", str(run), "--episodes", "3", "--checkpoint", "latest", "--seed", "0"]) == 0
    own = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert own["seed"] == 0 and own["first_episode_seed"] == stream_seed(0, "eval_envs")
    assert own["mean_return"] != out["mean_return"]
    (run / "checkpoints" / "latest.ckpt").write_bytes(b"not a checkpoint")
    assert main(["eval", str(run), "--checkpoint", "latest"]) == 2
    assert "not a readable contrl checkpoint" in capsys.readouterr().err


def test_an_interrupted_run_exits_130_after_saving(tmp_path, capsys, monkeypatch):
    import os
    import signal

    from contrl.agents.sac import SAC, SACConfig
    from contrl.registry import REGISTRY

    class Interrupting(SAC):
        def update(self, batches):
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C mid-run
            return SAC.update(self, batches)

    monkeypatch.setitem(REGISTRY, "sac", (SACConfig, Interrupting, "offpolicy"))
    code = main(["train", "sac", "Pendulum-v1", "--steps", "400", "--learning-starts", "200",
                 "--batch-size", "32", "--hidden", "32", "32", "--update-every", "4",
                 "--buffer-size", "5000", "--runs-dir", str(tmp_path), "--no-progress",
                 "--no-tensorboard"])
    assert code == 130
    captured = capsys.readouterr()
    assert "checkpoint saved. Resume with" in captured.out
    assert "stopping at the next safe point" in captured.err


def test_online_flags_are_refused_only_without_an_online_phase(pendulum_dataset):
    from contrl.config import ConfigError
    from contrl.resolve import build_configs
    given = {"dataset": pendulum_dataset, "online_steps": 1000, "learning_starts": 100,
             "n_step": 3}
    assert build_configs("iql", "Pendulum-v1", given)[1].learning_starts == 100  # used online
    assert build_configs("sac", "Pendulum-v1", {"learning_starts": 100})[1].learning_starts == 100
    with pytest.raises(ConfigError, match="^--learning-starts, --n-step: settings of the online"):
        build_configs("iql", "Pendulum-v1", {**given, "online_steps": 0})
