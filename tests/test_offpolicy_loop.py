"""The shared online loop: exact resume, determinism, interruption and NaN handling."""
import csv
import shutil
import signal
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from contrl.agents.base import AgentBase
from contrl.agents.sac import SAC
from contrl.errors import ContrlError, NonFiniteLossError
from contrl.loops.offpolicy import train_offpolicy
from contrl.run import Checkpoint, new_run_dir
from contrl.train import train


def _params(run_dir):
    ckpt = Checkpoint(run_dir / "checkpoints" / "latest.ckpt")
    return ckpt, jax.tree_util.tree_leaves(ckpt.restore_agent(_template(run_dir)))


def _template(run_dir):
    from contrl.rundir import load_agent
    return load_agent(run_dir, "latest")[0]


def _rows(path, drop=("time", "steps_per_sec")):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def _run(tmp_path, tiny, steps, name, resume=None, algo="sac", **over):
    from contrl.registry import resolve_algo
    run_cfg, algo_cfg = tiny(algo=algo, steps=steps, **over)
    run_dir = resume or new_run_dir(str(tmp_path / name), algo, run_cfg.env, run_cfg.seed)
    if resume is None:
        from contrl import config as C
        from contrl.run import atomic_write_json
        atomic_write_json(run_dir / "config.json", {"algo": algo, "run": C.to_dict(run_cfg),
                                                   "algo_config": C.to_dict(algo_cfg)})
    train_offpolicy(run_cfg, algo_cfg, resolve_algo(algo)[1], run_dir, resume=resume is not None)
    return run_dir


RECURRENT = dict(seq_len=8, burn_in=2, rnn_hidden=8, batch_size=8, hidden=(16, 16))


@pytest.mark.parametrize("algo,over,n", [("sac", {}, 350), ("td3", {}, 350),
                                         ("rsac", RECURRENT, 250)])
def test_resume_gives_identical_parameters(tmp_path, tiny, algo, over, n):
    # 2N straight vs N, stop, resume for N more; N ends mid-episode (Pendulum: 200 steps), so
    # a recurrent policy's state and the frame stack must come back exactly
    over = dict(over, frame_stack=2) if over else over
    straight = _run(tmp_path, tiny, 2 * n, "a", algo=algo, **over)
    half = _run(tmp_path, tiny, n, "b", algo=algo, **over)
    _run(tmp_path, tiny, 2 * n, "b", resume=half, algo=algo, **over)
    ca, pa = _params(straight)
    cb, pb = _params(half)
    assert ca.meta["step"] == cb.meta["step"] == 2 * n
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # the resumed run's log continues the first one's; the stop added one end-of-run row at 350
    resumed = [r for r in _rows(half / "progress.csv") if r["step"] != str(n)]
    keys = ("step", "episodes", "critic_loss", "actor_loss", "eval_return")
    assert [{k: r[k] for k in keys} for r in _rows(straight / "progress.csv")] == \
        [{k: r[k] for k in keys} for r in resumed]


def test_same_seed_twice_gives_identical_progress(tmp_path, tiny):
    a = _run(tmp_path, tiny, 500, "a")
    b = _run(tmp_path, tiny, 500, "b")
    ra, rb = _rows(a / "progress.csv"), _rows(b / "progress.csv")
    assert len(ra) == 5 and ra == rb
    c = _run(tmp_path, tiny, 500, "c", seed=1)
    assert _rows(c / "progress.csv") != ra


def test_parallel_envs_run_and_count_steps(tmp_path, tiny):
    d = _run(tmp_path, tiny, 400, "p", num_envs=2)
    ckpt = Checkpoint(d / "checkpoints" / "latest.ckpt")
    assert ckpt.meta["step"] == 400


def test_first_update_step_by_hand_and_a_run_that_cannot_learn_says_so(tmp_path, tiny, capsys):
    from types import SimpleNamespace as NS

    from contrl.loops.offpolicy import first_update_step
    assert first_update_step(NS(learning_starts=1000, update_every=1), 1) == 1000
    assert first_update_step(NS(learning_starts=1000, update_every=8), 1) == 1000
    assert first_update_step(NS(learning_starts=1001, update_every=8), 2) == 1008
    assert first_update_step(NS(learning_starts=0, update_every=4), 2) == 8
    _run(tmp_path, tiny, 200, "q", learning_starts=300)  # 200 steps, updates from 300 on
    assert "first gradient step comes at env step 300 (learning_starts 300, update_every 4), " \
        "after this run's 200 steps: it will not learn" in capsys.readouterr().err


class _NaNSAC(SAC):
    @jax.jit
    def update(self, batches):
        agent, metrics = SAC.update(self, batches)
        return agent, {**metrics, "critic_loss": metrics["critic_loss"] * np.nan}


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, tiny):
    run_cfg, algo_cfg = tiny(steps=400, checkpoint_every=100, learning_starts=150)
    run_dir = new_run_dir(str(tmp_path), "sac", run_cfg.env, 0)
    with pytest.raises(NonFiniteLossError, match=r"critic_loss became nan at step 152; training "
                       r"stopped; the last good checkpoint \(step 100\) is .*latest.ckpt"):
        train_offpolicy(run_cfg, algo_cfg, _NaNSAC, run_dir)
    assert Checkpoint(run_dir / "checkpoints" / "latest.ckpt").meta["step"] == 100


def test_train_entry_writes_run_directory(tmp_path):
    out = train("sac", "Pendulum-v1", dict(steps=300, learning_starts=100, batch_size=32,
                                          hidden=(32, 32), update_every=4, buffer_size=5000,
                                          eval_every=300, eval_episodes=2,
                                          runs_dir=str(tmp_path), progress=False))
    from pathlib import Path
    run = Path(out["run_dir"])
    assert run.name.startswith("sac-Pendulum-v1-s0-")
    for f in ("config.json", "progress.csv", "eval.json", "checkpoints/latest.ckpt",
              "checkpoints/best.ckpt"):
        assert (run / f).exists(), f
    assert list((run / "tb").iterdir())  # TensorBoard event file
    import json
    ev = json.loads((run / "eval.json").read_text())
    assert ev["episodes"] == 2 and {"mean_return", "std_return"} <= set(ev)


class _InterruptingSAC(SAC):
    def update(self, batches):
        import os
        import signal
        os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C mid-run
        return SAC.update(self, batches)


def test_ctrl_c_saves_checkpoint_and_resume_finishes(tmp_path, tiny, capsys):
    # rows every 350 steps: the stop at 300 falls between two rows, after the episode that
    # ended at 200 and the updates from 300 on, which the resumed run's row at 350 must count
    run_cfg, algo_cfg = tiny(steps=600, learning_starts=300, log_every=350, eval_every=600)
    run_dir = new_run_dir(str(tmp_path), "sac", run_cfg.env, 0)
    out = train_offpolicy(run_cfg, algo_cfg, _InterruptingSAC, run_dir, algo="sac")
    assert out["interrupted"] and out["step"] == 300
    assert Checkpoint(run_dir / "checkpoints" / "latest.ckpt").meta["step"] == 300
    assert f"contrl train sac --resume {run_dir}" in capsys.readouterr().out
    out = train_offpolicy(run_cfg, algo_cfg, SAC, run_dir, resume=True)
    assert not out["interrupted"] and out["step"] == 600
    times = [float(r["time"]) for r in _rows(run_dir / "progress.csv", drop=())]
    assert times == sorted(times)  # wall time continues across the resume
    straight = new_run_dir(str(tmp_path / "s"), "sac", run_cfg.env, 0)
    train_offpolicy(run_cfg, algo_cfg, SAC, straight)
    rows = _rows(run_dir / "progress.csv")
    assert [r["step"] for r in rows] == ["350", "600"] and rows[0]["episode_return"]
    assert rows == _rows(straight / "progress.csv")


def test_offline_ratio_mixes_dataset_into_batches(tmp_path, tiny, monkeypatch):
    from contrl import config as C
    from contrl.data.collect import rollout_episodes
    from contrl.data.datasets import write_minari
    from contrl.policy import RandomPolicy
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    write_minari("pendulum-mix-v0", rollout_episodes(RandomPolicy(1, 0), "Pendulum-v1", 400, 0),
                 "Pendulum-v1", {})
    seen = []

    class Spy(SAC):
        def update(self, batches):
            seen.append(np.asarray(batches.obs))
            return SAC.update(self, batches)

    run_cfg, algo_cfg = tiny(steps=300, dataset="pendulum-mix-v0", offline_ratio=0.5)
    run_dir = new_run_dir(str(tmp_path / "m"), "sac", run_cfg.env, 0)
    train_offpolicy(run_cfg, algo_cfg, Spy, run_dir)
    from contrl.data.datasets import load_dataset
    data = {tuple(o) for o in load_dataset("pendulum-mix-v0").observations}
    assert seen and all(s.shape == (4, 32, 3) for s in seen)  # k=4 batches of 32
    for obs in seen:  # the last 16 rows of every batch come from the dataset
        assert all(tuple(o) in data for o in obs[:, 16:].reshape(-1, 3))
    # the dataset remade under its name: the run's resume is refused
    shutil.rmtree(tmp_path / "minari" / "pendulum-mix-v0")
    write_minari("pendulum-mix-v0", rollout_episodes(RandomPolicy(1, 1), "Pendulum-v1", 400, 1),
                 "Pendulum-v1", {})
    with pytest.raises(ContrlError, match="was trained on other transitions than "
                                          "pendulum-mix-v0 gives now"):
        train_offpolicy(run_cfg, algo_cfg, SAC, run_dir, resume=True)
    with pytest.raises(C.ConfigError, match="offline_ratio needs --dataset"):
        tiny(offline_ratio=0.5)


def test_stop_at_return_keeps_a_full_checkpoint(tmp_path, tiny):
    from contrl.run import Checkpoint
    # any Pendulum return is above -5000: the run stops at its first evaluation
    run_cfg, algo_cfg = tiny(steps=3000, eval_every=300, stop_at_return=-5000.0)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    out = train_offpolicy(run_cfg, algo_cfg, SAC, run_dir)
    assert out["step"] == 300
    ckpt = Checkpoint(run_dir / "checkpoints" / "latest.ckpt")
    assert ckpt.meta["step"] == 300 and ckpt.arrays("buffer/")  # buffer kept for export


# ------------------------------------------------------------------ a policy with a carry
class CounterAgent(AgentBase, struct.PyTreeNode):
    """A toy stateful agent: its action depends on a per-env step counter that it carries
    (reset at each episode's start), and it sums the counters it acted with into ``seen``,
    so a carry lost or restarted on resume shows in the agent itself."""

    METRICS = ("w",)
    w: jax.Array
    seen: jax.Array

    @classmethod
    def create(cls, cfg, obs_dim, action_dim, seed, num_envs=1):
        return cls(w=jnp.zeros(()), seen=jnp.zeros((), jnp.int32))

    def initial_carry(self, num_envs):
        return np.zeros(num_envs, np.int32)

    def _act(self, carry):
        return jnp.tanh(self.w + jnp.asarray(carry)[:, None] / 50.0 - 1.0)

    def sample_actions(self, obs, carry):
        return self._act(carry), carry + 1, self.replace(seen=self.seen + jnp.sum(carry))

    def eval_actions(self, obs, carry):
        return self._act(carry), carry + 1

    @jax.jit
    def update(self, batch):
        w = self.w + 1e-3 * jnp.mean(batch.reward)
        return self.replace(w=w), {"w": w}


def _counter_run(tmp_path, tiny, steps, resume=None):
    run_cfg, algo_cfg = tiny(steps=steps, eval_every=350, eval_episodes=1)
    run_dir = resume or new_run_dir(str(tmp_path), "toy", run_cfg.env, 0)
    out = train_offpolicy(run_cfg, algo_cfg, CounterAgent, run_dir, resume=resume is not None)
    return run_dir, out


def test_a_stateful_policy_keeps_its_carry_through_loop_evaluation_and_resume(tmp_path, tiny):
    straight, out = _counter_run(tmp_path / "a", tiny, 700)
    agent = Checkpoint(straight / "checkpoints" / "latest.ckpt").restore_agent(
        CounterAgent.create(None, 3, 1, 0))
    # acting from step 200 (learning_starts) to 699 with the counter at t mod 200 (Pendulum's
    # episodes last 200 steps; the counter also runs through the random warm-up)
    assert int(agent.seen) == sum(t % 200 for t in range(200, 700)) == 44750
    # resumed mid-episode (step 350): the counter continues where it stopped
    half, _ = _counter_run(tmp_path / "b", tiny, 350)
    _counter_run(tmp_path / "b", tiny, 700, resume=half)
    resumed = Checkpoint(half / "checkpoints" / "latest.ckpt").restore_agent(agent)
    assert int(resumed.seen) == 44750 and float(resumed.w) == float(agent.w)
    # evaluation carries the counter through the episode: the same as acting by hand
    from contrl.envs import make_env
    from contrl.seeding import stream_seed
    env = make_env("Pendulum-v1")
    env.reset(seed=stream_seed(0, "eval_envs"))  # the run's (seed 0) first evaluation episode
    total, t, done = 0.0, 0, False
    while not done:
        _, r, term, trunc, _ = env.step(np.tanh(float(agent.w) + np.float32(t) / 50.0 - 1.0)[None])
        total, t, done = total + r, t + 1, term or trunc
    assert out["eval"]["returns"][0] == pytest.approx(total, rel=1e-5)


def test_maze_run_resumes_mid_episode_with_its_goal_and_reports_success(tmp_path):
    """AntMaze (dict observations, a goal on the Python side of the env): stopped and resumed
    mid-episode, a run ends exactly as a straight one; evaluations report success_rate."""
    from contrl.train import build_configs, train
    over = dict(steps=300, learning_starts=100, batch_size=32, hidden=(32, 32), buffer_size=5000,
                eval_every=300, eval_episodes=1, log_every=100, checkpoint_every=10_000,
                update_every=4, tensorboard=False, progress=False)
    run_cfg, _ = build_configs("sac", "AntMaze_UMaze-v5", over)
    assert run_cfg.obs_keys == ("observation", "achieved_goal", "desired_goal")
    a = train("sac", "AntMaze_UMaze-v5", {**over, "runs_dir": str(tmp_path / "a")})
    b = train("sac", "AntMaze_UMaze-v5", {**over, "steps": 150, "runs_dir": str(tmp_path / "b")})
    train("sac", None, {"steps": 300}, resume=b["run_dir"])
    ca = Checkpoint(f"{a['run_dir']}/checkpoints/latest.ckpt")
    cb = Checkpoint(f"{b['run_dir']}/checkpoints/latest.ckpt")
    assert bytes(ca._npz["agent"]) == bytes(cb._npz["agent"])
    goal_a, goal_b = (np.asarray(c.state()["pool"]["envs"][0]["attrs"]["goal"]) for c in (ca, cb))
    np.testing.assert_array_equal(goal_a, goal_b)
    np.testing.assert_array_equal(ca.state()["pool"]["obs"], cb.state()["pool"]["obs"])
    assert 0.0 <= a["eval"]["success_rate"] <= 1.0 and len(a["eval"]["success_interval"]) == 2
    assert "mean_steps_to_goal" in a["eval"] and "trace" not in a["eval"]
    assert (Path(a["run_dir"]) / "eval.png").read_bytes().startswith(b"\x89PNG")
    with open(f"{a['run_dir']}/progress.csv") as f:
        assert "eval_success_rate" in next(csv.reader(f))


def test_best_checkpoint_follows_the_named_metric(tmp_path, tiny, monkeypatch):
    from contrl.errors import ContrlError
    from contrl.loops.common import Session
    run_cfg, algo_cfg = tiny(best_metric="success_rate")
    with pytest.raises(ContrlError, match="Pendulum-v1 does not report success"):
        Session(run_cfg, algo_cfg, (), tmp_path)  # before training, not at its first evaluation
    monkeypatch.setattr("contrl.envs.make.reports_success", lambda *a, **k: True)
    session = Session(run_cfg, algo_cfg, (), tmp_path)
    # success rate first, the return breaks ties
    assert session.rank({"mean_return": -5.0, "success_rate": 0.5}) == (0.5, -5.0)
    assert session.rank({"mean_return": 1.0, "success_rate": 0.2}) < (0.5, -5.0)
    (tmp_path / "x").mkdir()
    auto = Session(tiny()[0], algo_cfg, (), tmp_path / "x")
    assert auto.rank({"mean_return": 3.0}) == (3.0,)
    assert auto.rank({"mean_return": 3.0, "success_rate": 0.1}) == (0.1, 3.0)
    with pytest.raises(ContrlError, match="does not report it"):
        session.rank({"mean_return": 1.0})
    with pytest.raises(ContrlError, match="normalized_score needs a dataset"):
        Session(tiny(best_metric="normalized_score")[0], algo_cfg, (), tmp_path / "y")
    from contrl import config as C
    with pytest.raises(C.ConfigError, match="best_metric must be one of"):
        tiny(best_metric="median")


def test_sigkill_after_a_checkpoint_then_resume_matches_a_straight_run(tmp_path):
    """Fault injection: a training process killed with SIGKILL (no chance to clean up) once a
    mid-run checkpoint is on disk, then resumed, ends exactly where a straight run ends, with
    no temporary file left. (benchmarks/fault_injection.py kills at random moments.)"""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from contrl.train import train
    opts = ["--steps", "1200", "--learning-starts", "200", "--batch-size", "32", "--hidden",
            "32", "32", "--update-every", "4", "--buffer-size", "5000", "--checkpoint-every",
            "100", "--eval-every", "600", "--eval-episodes", "2", "--no-progress",
            "--no-tensorboard"]
    proc = subprocess.Popen([sys.executable, "-m", "contrl.cli", "train", "sac", "Pendulum-v1",
                             *opts, "--runs-dir", str(tmp_path / "k")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_at = None
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        found = list((tmp_path / "k").glob("*/checkpoints/latest.ckpt"))
        if found and Checkpoint(found[0]).meta["step"] >= 300:
            proc.send_signal(signal.SIGKILL)
            killed_at = Checkpoint(found[0]).meta["step"]
            break
        time.sleep(0.02)
    proc.wait()
    assert killed_at is not None and killed_at < 1200, "the run ended before it was killed"
    run = next((tmp_path / "k").iterdir())
    train("sac", None, {"steps": 1200, "progress": False}, resume=str(run))
    straight = train("sac", "Pendulum-v1", {  # the same settings, in-process, uninterrupted
        "steps": 1200, "learning_starts": 200, "batch_size": 32, "hidden": (32, 32),
        "update_every": 4, "buffer_size": 5000, "checkpoint_every": 100, "eval_every": 600,
        "eval_episodes": 2, "progress": False, "tensorboard": False,
        "runs_dir": str(tmp_path / "s")})
    a = Checkpoint(Path(straight["run_dir"]) / "checkpoints" / "latest.ckpt")
    b = Checkpoint(run / "checkpoints" / "latest.ckpt")
    assert bytes(a._npz["agent"]) == bytes(b._npz["agent"])
    assert not list(run.rglob(".*.tmp"))


def test_ctrl_c_during_start_up_stops_resumably_or_leaves_nothing(tmp_path, capsys, monkeypatch):
    """A signal while the run is being set up (agent built, envs made) ends in a step-0
    checkpoint that resumes; a second one stops at once and removes the new run directory."""
    import os
    import signal

    from contrl.agents.sac import SACConfig
    from contrl.cli import main
    from contrl.registry import REGISTRY
    from contrl.train import train

    def make(times):
        class SignalledDuringStartUp(SAC):
            @classmethod
            def create(cls, *args, **kwargs):
                for _ in range(times):
                    os.kill(os.getpid(), signal.SIGINT)
                return SAC.create.__func__(cls, *args, **kwargs)
        return SignalledDuringStartUp

    opts = dict(steps=300, learning_starts=100, batch_size=32, hidden=(32, 32), update_every=4,
                buffer_size=5000, eval_every=300, eval_episodes=1, progress=False,
                tensorboard=False)
    monkeypatch.setitem(REGISTRY, "sac", (SACConfig, make(1), "offpolicy"))
    out = train("sac", "Pendulum-v1", {**opts, "runs_dir": str(tmp_path / "once")})
    assert out["interrupted"] and out["step"] == 0 and out["signal"] == signal.SIGINT
    monkeypatch.setitem(REGISTRY, "sac", (SACConfig, SAC, "offpolicy"))
    assert train("sac", None, {"steps": 300}, resume=out["run_dir"])["step"] == 300
    monkeypatch.setitem(REGISTRY, "sac", (SACConfig, make(2), "offpolicy"))
    runs = tmp_path / "twice"
    assert main(["train", "sac", "Pendulum-v1", "--runs-dir", str(runs), "--no-progress"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not runs.exists()  # the start made the runs folder: it goes with the run


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_during_the_imports_is_not_lost(signum, tmp_path, capsys, monkeypatch):
    """`contrl train` watches the signals from its first line: one during the imports (where
    Python's KeyboardInterrupt could land in JAX's garbage-collection callback and be dropped,
    the run then training to the end) stops it before anything is made, exit 130 (143 for
    SIGTERM); the process's own handlers are back afterwards."""
    import os

    import contrl.cli as cli
    monkeypatch.setattr(cli, "pin_cores", lambda: os.kill(os.getpid(), signum))
    before = signal.getsignal(signal.SIGINT)
    runs = tmp_path / "runs"
    assert cli.main(["train", "sac", "Pendulum-v1", "--runs-dir", str(runs), "--no-progress",
                     "--no-tensorboard"]) == 128 + signum  # 130 / 143, as the loop's stops
    err = capsys.readouterr().err
    assert "stopping at the next safe point" in err and "interrupted" in err
    assert not runs.exists() or not any(runs.iterdir())
    assert signal.getsignal(signal.SIGINT) is before
