"""Bad input, table-driven: every case must exit nonzero with one line naming the problem, no
traceback, and leave no run directory or dataset behind. Extend the table as features land."""
import json
import os

import h5py
import numpy as np
import pytest

from contrl.cli import main


def _h5(path, attrs=None, **replace):
    """A small valid D4RL-style Pendulum file, with some members replaced (None: dropped) and
    ``attrs`` set on the file."""
    n = 8
    arrays = {"observations": np.zeros((n, 3), np.float32), "actions": np.zeros((n, 1), np.float32),
              "rewards": np.zeros(n, np.float32), "terminals": np.zeros(n, bool),
              "timeouts": np.eye(1, n, n - 1, dtype=bool)[0]}
    arrays.update(replace)
    with h5py.File(path, "w") as f:
        f.attrs.update(attrs or {})
        for k, v in arrays.items():
            if isinstance(v, dict):
                g = f.create_group(k)
                for kk, vv in v.items():
                    g[kk] = vv
            elif v is not None:
                f[k] = v
    return str(path)


def _nan_rewards():
    r = np.zeros(8, np.float32)
    r[3] = np.nan
    return r


@pytest.fixture
def files(tmp_path):
    """Paths of broken inputs, made on demand by name."""
    d = tmp_path / "inputs"
    d.mkdir()

    def make(name):
        if name == "sweep_dir":  # where a sweep would go: it must not be created
            return str(d / "sweep")
        if name == "empty_dir":
            (d / "empty").mkdir()
            return str(d / "empty")
        if name == "existing_mp4":  # a user's file, which a video must not replace
            (d / "mine.mp4").write_text("precious")
            return str(d / "mine.mp4")
        if name == "dir_mp4":
            (d / "d.mp4").mkdir()
            return str(d / "d.mp4")
        if name == "file":
            (d / "a_file").write_text("x")
            return str(d / "a_file")
        if name in ("under_a_file", "clip_under_a_file"):  # a path whose parent is a file
            (d / "a_file").write_text("x")
            return str(d / "a_file" / ("run" if name == "under_a_file" else "clip.mp4"))
        if name == "not_hdf5":
            (d / "x.hdf5").write_text("not hdf5")
            return str(d / "x.hdf5")
        if name == "empty_h5":
            z = np.zeros((0,), np.float32)
            return _h5(d / "e.hdf5", observations=np.zeros((0, 3), np.float32),
                       actions=np.zeros((0, 1), np.float32), rewards=z,
                       terminals=np.zeros(0, bool), timeouts=np.zeros(0, bool))
        if name == "one_row_h5":
            return _h5(d / "o.hdf5", observations=np.zeros((1, 3), np.float32),
                       actions=np.zeros((1, 1), np.float32), rewards=np.zeros(1, np.float32),
                       terminals=np.zeros(1, bool), timeouts=np.ones(1, bool))
        if name == "scalar_h5":
            return _h5(d / "s.hdf5", rewards=np.float32(1.0))
        if name == "string_h5":
            return _h5(d / "t.hdf5", rewards=np.array([b"a"] * 8))
        if name == "group_h5":
            return _h5(d / "g.hdf5", actions={"x": np.zeros((8, 1), np.float32)})
        if name == "nan_h5":
            return _h5(d / "n.hdf5", rewards=_nan_rewards())
        if name == "inf_obs_h5":
            obs = np.zeros((8, 3), np.float32)
            obs[5, 1] = np.inf
            return _h5(d / "i.hdf5", observations=obs)
        if name == "h5":
            return _h5(d / "ok.hdf5")
        if name in ("h5_env3", "h5_env5"):  # Pendulum data, one with 5-number observations
            width = int(name[-1])
            return _h5(d / f"w{width}.hdf5", attrs={"env_id": "Pendulum-v1"},
                       observations=np.zeros((8, width), np.float32))
        if name == "h5_twice":  # one file named two ways
            path = _h5(d / "ok.hdf5")
            return f"{path},/.{path}"
        if name == "rewards_2col_h5":
            return _h5(d / "r2.hdf5", rewards=np.zeros((8, 2), np.float32))
        if name == "next_obs_7_h5":
            return _h5(d / "n7.hdf5", next_observations=np.zeros((8, 7), np.float32))
        if name == "half_terminal_h5":
            return _h5(d / "ht.hdf5", terminals=np.full(8, 0.5, np.float32))
        if name == "other_env_h5":  # recorded in another env with the same shapes
            return _h5(d / "oe.hdf5", attrs={"env_id": "MountainCarContinuous-v0"})
        if name == "no_ends_h5":  # neither terminals nor timeouts: one seeming episode
            return _h5(d / "b.hdf5", timeouts=np.zeros(8, bool))
        if name == "missing_h5":
            return _h5(d / "m.hdf5", timeouts=None)
        if name == "torque_h5":  # Pendulum's torques reach 2: outside a declared [-1, 1]
            return _h5(d / "q.hdf5", actions=np.full((8, 1), 1.8, np.float32))
        if name == "wrong_dim_h5":
            return _h5(d / "w.hdf5", observations=np.zeros((8, 5), np.float32))
        if name == "dense_h5":  # Pendulum-like rewards, not a goal's 0/1
            return _h5(d / "r.hdf5", rewards=-np.arange(8, dtype=np.float32))
        if name == "maze_29_h5":  # D4RL's antmaze layout (qpos and qvel, no goal): not contrl's
            return _h5(d / "m29.hdf5", observations=np.zeros((8, 29), np.float32),
                       actions=np.zeros((8, 8), np.float32))
        if name == "bad_minari":
            (d / "ds" / "data").mkdir(parents=True)
            (d / "ds" / "data" / "metadata.json").write_text("{broken")
            return str(d / "ds")
        if name in ("run_lr_a", "run_lr_b", "run_lr_a_dotted"):  # valid runs that differ in
            run = d / name.removesuffix("_dotted")  # more than the seed (and one named so)
            (run / "checkpoints").mkdir(parents=True, exist_ok=True)  # named twice by a case
            (run / "config.json").write_text(json.dumps({
                "algo": "sac", "run": {"env": "Pendulum-v1", "seed": int(name == "run_lr_b")},
                "algo_config": {"lr": 1e-3 if name == "run_lr_a" else 3e-4}}))
            return f"{run}/." if name.endswith("_dotted") else str(run)
        if name in ("run_pendulum", "run_antgoal_v2"):  # valid configurations of runs
            env = {"run_pendulum": "Pendulum-v1", "run_antgoal_v2": "AntGoal-v2"}[name]
            (d / name).mkdir()
            (d / name / "config.json").write_text(json.dumps(
                {"algo": "sac", "run": {"env": env}, "algo_config": {}}))
            return str(d / name)
        if name in ("runs_no_env", "runs_text_seed"):  # readable logs, configs that lack what a report groups by
            run = d / name / "a"
            run.mkdir(parents=True)
            saved = {} if name == "runs_no_env" else {"env": "Pendulum-v1", "seed": "zero"}
            (run / "config.json").write_text(json.dumps(
                {"algo": "sac", "run": saved, "algo_config": {}}))
            (run / "progress.csv").write_text("step,time,eval_return\n200,1.0,-1200.0\n")
            return str(d / name)
        if name == "reacher_no_ckpt":  # a goal reacher's configuration, no checkpoint
            (d / name).mkdir()
            (d / name / "config.json").write_text(json.dumps(
                {"algo": "sac", "run": {"env": "AntGoal-v3", "seed": 0}, "algo_config": {}}))
            return str(d / name)
        if name in ("sweep_damaged", "sweep_list", "sweep_is_run"):  # --dir of a sweep
            sweep = d / name
            sweep.mkdir()
            if name == "sweep_is_run":
                (sweep / "config.json").write_text("{}")
            else:
                (sweep / "sweep.json").write_text("{oops" if name == "sweep_damaged" else "[]")
            return str(sweep)
        if name in ("runs_bad_progress", "runs_binary_progress"):  # a run whose log is damaged
            run = d / name / "a"
            run.mkdir(parents=True)
            (run / "config.json").write_text(json.dumps(
                {"algo": "sac", "run": {"env": "Pendulum-v1", "seed": 0}, "algo_config": {}}))
            if name == "runs_bad_progress":
                (run / "progress.csv").write_text("step,time,eval_return\n200,1.0,abc\n")
            else:
                (run / "progress.csv").write_bytes(bytes(range(128, 256)))
            return str(d / name)
        if name in ("run_missing_keys", "run_bad_json", "run_wrong_types", "run_no_env"):
            run = d / name
            (run / "checkpoints").mkdir(parents=True)
            text = {"run_missing_keys": json.dumps({"algo": "sac"}), "run_bad_json": "{oops",
                    "run_wrong_types": json.dumps({"algo": "sac", "run": {
                        "env": "Pendulum-v1", "seed": "zero"}, "algo_config": {}}),
                    "run_no_env": json.dumps({"algo": "sac", "run": {}, "algo_config": {}})}[name]
            (run / "config.json").write_text(text)
            return str(run)
        raise KeyError(name)
    return make


# (argv with {name} placeholders for inputs made by the fixture, expected message)
CASES = [
    # train: flags and values
    (["train", "sacc", "Hopper-v5"], "unknown algorithm 'sacc'"),
    (["train", "sac", "HalfCheeta-v5"], "closest: HalfCheetah-v5"),
    (["train", "sac", "Hopper-v5", "--lr", "-1"], "lr must be in (0"),
    (["train", "sac", "Hopper-v5", "--lr", "nan"], "lr must be a finite number"),
    (["train", "sac", "Hopper-v5", "--lr", "inf"], "lr must be a finite number"),
    (["train", "sac", "Hopper-v5", "--lr", "1e30"], "lr must be in (0"),
    (["train", "sac", "Hopper-v5", "--gamma", "nan"], "gamma must be a finite number"),
    (["train", "sac", "Hopper-v5", "--gamma", "1.5"], "gamma must be in"),
    (["train", "sac", "Hopper-v5", "--tau", "0"], "tau must be in"),
    (["train", "sac", "Hopper-v5", "--init-alpha=-inf"], "init_alpha must be a finite number"),
    (["train", "sac", "Hopper-v5", "--batch-size", "512", "--buffer-size", "100"], "larger than"),
    (["train", "sac", "CartPole-v1"], "continuous"),
    (["train", "sac", "Hopper-v5", "--steps", "0"], "steps must be positive"),
    (["train", "sac", "Pendulum-v1", "--seed", str(2**40)], "seed must be in [0, 2**32)"),
    (["train", "sac", "Pendulum-v1", "--seeds", f"{2**32}-{2**32 + 1}"], "seed must be in [0, 2**32)"),
    (["train", "sac", "Hopper-v5", "--num-envs", "0"], "num_envs must be positive"),
    (["train", "sac", "Hopper-v5", "--eval-episodes", "0"], "eval_episodes must be positive"),
    (["train", "sac", "Hopper-v5", "--best-metric", "median"], "best_metric must be one of"),
    (["train", "sac", "Hopper-v5", "--weight-init", "xavier"], "weight_init must be"),
    (["train", "sac", "Hopper-v5", "--offline-ratio", "0.5"], "offline_ratio needs --dataset"),
    (["train", "sac", "Hopper-v5", "--steps", "1001", "--num-envs", "2"], "multiple of num_envs"),
    (["train", "sac", "AntMaze_UMaze-v5", "--obs-keys", "observation", "goal"],
     "observation keys goal not among its keys"),
    (["train", "sac", "AntMaze_Tiny-v5"], "unknown environment"),
    (["train", "sac", "Pendulum-v1", "--obs-keys", "observation"], "Pendulum-v1's are a flat vector"),
    (["train", "sac", "AntGoal-v4"], "closest: AntGoal-v3, AntGoal-v2, AntGoal-v1"),
    (["train", "sac", "AntMaze_UMaze-v5", "--eval-episodes", "0"], "eval_episodes must be positive"),
    (["train", "td3", "Hopper-v5", "--noise-type", "pink"], "noise_type must be"),
    (["train", "ppo", "Hopper-v5", "--minibatches", "5000"], "cannot be split into 5000"),
    (["train", "a2c", "Hopper-v5", "--gae-lambda", "2"], "gae_lambda must be in"),
    (["train", "a2c", "Hopper-v5", "--no-use-baseline", "--baseline-steps", "5"],
     "--baseline-steps: not used without a baseline"),
    (["train", "a2c", "Hopper-v5", "--gae-lambda", "0.9", "--no-use-baseline"],
     "--gae-lambda: not used without a baseline"),
    (["train", "ppo", "Hopper-v5", "--optimizer", "sgd"], "optimizer must be adam or rmsprop"),
    (["train", "ppo", "Hopper-v5", "--lr", "nan"], "lr must be a finite number"),
    (["train", "ppo", "Hopper-v5", "--steps", "1001", "--num-envs", "8"], "multiple of num_envs"),
    (["train", "seeded_sac", "Pendulum-v1"], "needs a seeding policy"),
    (["train", "iql", "AntMaze_UMaze_D4RL-v5", "--dataset", "x-v0", "--online-steps", "1000",
      "--n-step", "3"], "n_step 3 with reward_normalization antmaze: its r - 1 is applied once per"),
    (["train", "seeded_sac", "Pendulum-v1", "--dataset", "x-v0", "--prev-action", "--frame-stack",
      "2"], "seeded_sac seeds its networks on the data's plain observations: --frame-stack, "
     "--prev-action would change what they read"),
    # memory: recurrent agents and partially observed tasks
    (["train", "rsac", "Pendulum-V-v1", "--seq-len", "0"], "seq_len must be a positive window"),
    (["train", "rsac", "Pendulum-P-v1", "--seq-len", "8"], "must be shorter than the window seq_len "
     "(8) (burn_in 16: the rsac preset for Pendulum-P-v1; --burn-in overrides it)"),
    (["train", "rsac", "Pendulum-P-v1", "--seq-len", "32", "--burn-in", "0", "--buffer-size", "20",
      "--batch-size", "8"], "holds 20 steps per env, fewer than one training window (seq_len 32)"),
    (["train", "rtd3", "Pendulum-V-v1", "--seq-len", "8", "--burn-in", "8"],
     "burn_in (8) must be shorter than the window seq_len (8)"),
    (["train", "sac", "Pendulum-V-v1", "--frame-stack", "0"], "frame_stack must be positive"),
    (["train", "rsac", "Pendulum-Q-v1"], "unknown environment 'Pendulum-Q-v1'"),
    (["train", "rsac", "dmc:cartpole-swingup-X"], "unknown environment"),
    (["train", "rsac", "dmc:quadruped-walk-P"], "mix positions and velocities"),
    (["train", "rdpg", "Pendulum-v1", "--dataset", "{no_ends_h5}", "--offline-ratio", "0.5"],
     "has no episode boundaries (no terminal and no timeout in any row): recurrent agents"),
    (["train", "rsac", "Pendulum-v1", "--dataset", "{h5}", "--offline-ratio", "0.5",
      "--prev-action", "--frame-stack", "2"], "a run with frame_stack 2 needs data collected"),
    (["train", "sac", "Pendulum-v1", "--utd-ratio", "0.3"], "must be a whole number"),
    (["train", "dagger", "Pendulum-v1"], "dagger needs --expert"),
    # model-based offline RL
    (["train", "mopo", "Pendulum-v1", "--elites", "8"], "elites (8) must be at most ensemble_size (7)"),
    (["train", "mopo", "Pendulum-v1", "--real-ratio", "1.5"], "real_ratio must be in [0.0, 1.0]"),
    (["train", "mopo", "Pendulum-v1", "--horizon", "0"], "horizon must be positive"),
    (["train", "mopo", "Pendulum-v1", "--rollout-batch-size", "100", "--model-buffer-size", "10"],
     "model_buffer_size (10) must hold at least one step"),
    (["train", "mopo", "Pendulum-v1", "--dataset", "d-v0", "--dynamics", "/nonexistent/run"],
     "no trained dynamics model at /nonexistent/run"),
    (["train", "mopo", "Pendulum-v1", "--dataset", "d-v0", "--online-steps", "10"],
     "mopo has no online phase"),
    (["train", "mopo", "Hopper-v5", "--dataset", "d-v0", "--frame-stack", "2"],
     "termination rule for Hopper-v5 reads its plain observations"),
    (["train", "sac", "Pendulum-v1", "--runs-dir", "{file}"], "not a directory"),
    (["train", "sac", "Pendulum-v1", "--run-dir", "{under_a_file}"],
     "cannot make the run directory --run-dir"),
    # train: datasets
    (["train", "iql", "Pendulum-v1"], "needs --dataset"),
    (["train", "iql", "Pendulum-v1", "--dataset", "/nonexistent.hdf5"], "no dataset"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{not_hdf5}"], "cannot open"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{empty_h5}"], "has no rows"),
    (["train", "bc", "Pendulum-v1", "--dataset", "{one_row_h5}"], "no complete transition"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{scalar_h5}"], "rewards is a scalar"),
    (["train", "td3bc", "Pendulum-v1", "--dataset", "{string_h5}"], "rewards does not hold numbers"),
    (["train", "cql", "Pendulum-v1", "--dataset", "{group_h5}"], "actions is a group"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{nan_h5}"], "rewards has a non-finite value (nan) at row 3"),
    (["train", "bc", "Pendulum-v1", "--dataset", "{inf_obs_h5}"], "observations has a non-finite value (inf) at row 5"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{missing_h5}"], "lacks timeouts"),
    (["train", "bc", "Pendulum-v1", "--dataset", "{torque_h5}", "--dataset-action-units",
      "scaled"], "lie outside the range of scaled"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{nan_h5}", "--dataset-action-units", "raw"],
     "dataset_action_units must be env or scaled"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{wrong_dim_h5}"], "5-dim observations; Pendulum-v1 has 3"),
    (["train", "iql", "AntMaze_UMaze-v5", "--dataset", "{maze_29_h5}"],
     "29-dim observations; AntMaze_UMaze-v5 has 31 (observation, achieved_goal, desired_goal, flattened"),
    (["train", "iql", "AntMaze_UMaze-v5", "--dataset", "{h5}"], "1-dim actions; AntMaze_UMaze-v5 has 8"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{dense_h5}", "--reward-normalization",
      "antmaze"], "reward_normalization=antmaze is for sparse goal datasets"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{bad_minari}"], "metadata.json is not valid JSON"),
    (["train", "sac", "Pendulum-v1", "--dataset", "{nan_h5}", "--offline-ratio", "0.5"], "non-finite value"),
    # resume
    (["train", "sac", "--resume", "/nonexistent/run"],
     "/nonexistent/run is not a contrl run directory (it does not exist)"),
    (["train", "sac", "--resume", "{run_missing_keys}"], "not a contrl run configuration"),
    (["train", "sac", "--resume", "{run_bad_json}"], "is not valid JSON"),
    (["train", "sac", "--resume", "{run_wrong_types}"], "seed: cannot read 'zero' as int"),
    (["eval", "{run_no_env}"], "its algo and run.env must be names"),  # was read as Pendulum
    # seeds trained together (vmapped)
    (["train", "ppo", "Pendulum-v1", "--seeds", "0-1"], "must be sac, td3, ddpg runs, not ppo"),
    (["train", "rsac", "Pendulum-v1", "--seeds", "0-1"], "must be sac, td3, ddpg runs, not rsac"),
    (["train", "sac", "Pendulum-v1", "--seeds", "0-1", "--seed", "2"], "with --seeds alone"),
    (["train", "sac", "Pendulum-v1", "--seeds", "1-0"], "seed range '1-0' is empty"),
    (["train", "sac", "Pendulum-v1", "--seeds", "0-1", "--run-dir", "{sweep_dir}"], "must hold {seed}"),
    (["train", "sac", "Pendulum-v1", "--seeds", "0-1", "--stop-at-return", "0"], "cannot stop early"),
    (["train", "sac", "Pendulum-v1", "--seeds", "0-1", "--dataset", "{nan_h5}", "--offline-ratio",
      "0.5"], "cannot use offline_ratio"),
    (["train", "sac", "--resume", "{run_lr_a}", "{run_lr_b}"], "differ in lr"),
    (["train", "sac", "--resume", "{run_lr_a}", "{run_lr_a}"], "names a run twice"),
    (["train", "sac", "--resume", "{run_lr_a}", "{run_lr_a_dotted}"], "names a run twice"),
    (["sweep", "rsac", "Pendulum-v1", "--seeds", "0-1", "--vmap-seeds", "--dir", "{sweep_dir}"],
     "not rsac"),
    (["sweep", "rsac", "Pendulum-v1", "--vmap-seeds", "--dir", "{sweep_dir}"],
     "not rsac"),  # one seed (the default): refused as well, not trained alone silently
    (["sweep", "sac", "Pendulum-v1", "--seeds", "0-1", "--vmap-seeds", "--ray", "--dir",
      "{sweep_dir}"], "through Ray every seed is its own trial"),
    # eval
    (["eval", "/nonexistent/run"], "not a contrl run directory"),
    (["eval", "{run_missing_keys}"], "not a contrl run configuration"),
    (["eval", "{run_bad_json}"], "is not valid JSON"),
    (["eval", "{run_wrong_types}", "--episodes", "0"], "episodes must be positive"),
    (["eval", "{run_wrong_types}", "--seed", "-1"], "seed must be in [0, 2**32), got -1"),
    # collect and datasets
    (["collect", "--random", "--env", "Pendulum-v1", "--name", "p-v0", "--noise", "-1"], "noise must be a number >= 0"),
    (["collect", "--random", "--env", "Pendulum-v1", "--name", "p-v0", "--noise", "nan"], "noise must be a number >= 0, got nan"),
    (["collect", "--random", "--env", "Pendulum-v1", "--name", "..-v0"], "must look like"),
    (["collect", "--random", "--env", "Pendulum-v1", "--name", "nov"], "must look like"),
    (["collect", "--name", "pendulum-x-v0"], "give a run directory"),
    (["collect", "--random", "--name", "pendulum-x-v0"], "needs --env"),
    (["collect", "--random", "--env", "Pendulum-v1", "--name", "p-v0", "--num-envs", "0"], "num_envs must be positive"),
    (["collect", "--random", "--env", "Pendulum-v1", "--name", "p-v0", "--steps", "0"], "steps must be positive"),
    (["collect", "--random", "--env", "HalfCheeta-v5", "--name", "p-v0"], "closest: HalfCheetah-v5"),
    (["collect", "--from-buffer", "--name", "p-v0"], "needs the run directory"),
    (["collect", "{run_missing_keys}", "--name", "p-v0"], "not a contrl run configuration"),
    (["collect", "--concat", "nothere-v0", "--name", "p-v0"], "no dataset 'nothere-v0'"),
    (["make-dataset", "antmaze-tiny-v0", "--reacher", "{run_pendulum}"], "unknown maze dataset 'antmaze-tiny-v0'"),
    (["make-dataset", "antmaze-umaze-v0", "--reacher", "{run_pendulum}"], "is not a goal reacher"),
    (["make-dataset", "antmaze-medium-play-v1", "--reacher", "{run_antgoal_v2}"],
     "(gymnasium's ant): use a reacher trained on AntGoal-v3"),
    (["make-dataset", "antmaze-umaze-v0", "--reacher", "/nonexistent/run"], "not a contrl run directory"),
    # sweep, report, video
    (["sweep", "sacc", "Pendulum-v1", "--dir", "{sweep_dir}"], "unknown algorithm 'sacc'"),
    (["sweep", "sac", "Pendulum-v9", "--dir", "{sweep_dir}"], "unknown environment 'Pendulum-v9'"),
    (["sweep", "sac", "Pendulum-v1", "--seeds", "5-2", "--dir", "{sweep_dir}"], "seed range '5-2' is empty"),
    (["sweep", "sac", "Pendulum-v1", "--set", "bogus=1", "--dir", "{sweep_dir}"], "--set bogus: unknown option"),
    (["sweep", "sac", "Pendulum-v1", "--set", "lr=abc", "--dir", "{sweep_dir}"], "lr: cannot read 'abc'"),
    (["sweep", "sac", "Pendulum-v1", "--set", "lr=-1", "--dir", "{sweep_dir}"], "lr must be in"),
    (["sweep", "sac", "Pendulum-v1", "--jobs", "0", "--dir", "{sweep_dir}"], "jobs must be positive"),
    (["sweep", "sac", "Pendulum-v1", "--set", "lr=0.1,0.1", "--dir", "{sweep_dir}"],
     "--set lr: '0.1' and '0.1' are the same value; give each value once"),
    (["sweep", "sac,sac", "Pendulum-v1", "--dir", "{sweep_dir}"],
     "names two runs sac-Pendulum-v1-s0 (an algorithm, env or --set value given twice?)"),
    (["sweep", "sac", ",", "--dir", "{sweep_dir}"], "expected a comma-separated list"),
    (["sweep", "sac", "Pendulum-v1", "--set", "steps=0", "--steps", "1000", "--dir", "{sweep_dir}"],
     "steps is given twice (--steps and --set steps=...)"),
    (["sweep", "sac", "Pendulum-v1", "--cores-per-run", "4096", "--dry-run", "--dir", "{sweep_dir}"],
     "cores_per_run (4096) is more than the"),
    (["train", "sac", "Pendulum-v1", "--video-every", "100"], "Pendulum-v1 is not rendered by MuJoCo"),
    (["report", "{empty_dir}"], "no evaluated runs"),
    (["report", "/nonexistent/sweep"], "is not a directory"),
    (["report", "{empty_dir}", "--reps", "1"], "reps must be at least 10"),
    (["report", "{empty_dir}", "--out", "{file}"], "is a file; the report needs a folder"),
    (["report", "{runs_bad_progress}"], "progress.csv is not a readable progress log (could not convert"),
    (["report", "{runs_binary_progress}"], "progress.csv is not a readable progress log"),
    (["video", "/nonexistent/run"], "not a contrl run directory"),
    (["video", "{run_missing_keys}", "--episodes", "0"], "episodes must be positive"),
    (["video", "{run_missing_keys}", "--out", "clip.avi"], "must end in .mp4 or .gif"),
    (["video", "{run_missing_keys}", "--max-steps", "0"], "max_steps must be positive, got 0"),
    (["video", "{run_missing_keys}", "--out", "{clip_under_a_file}"], "a folder on its path is a file"),
    (["video", "{run_missing_keys}", "--out", "{existing_mp4}"],
     "mine.mp4 exists; give --overwrite to replace it, or another name"),
    (["video", "{run_missing_keys}", "--out", "{dir_mp4}"], "d.mp4 is a directory"),
    (["video", "{run_missing_keys}", "--size", "33", "32"],
     "--size 33 32: an MP4 (H.264) needs even sides; give --size 34 32"),
    (["video", "{run_missing_keys}", "--out", "c.gif", "--gif"], "drop --gif"),
    (["video", "{run_missing_keys}", "--fps", "100000000"], "fps must be at most 1000"),
    (["train", "sac", "PointMaze_UMaze-v3", "--obs-keys", "observation", "observation",
      "desired_goal"], "obs_keys names observation twice"),
    (["train", "sac", "--resume", "{run_missing_keys}", "--no-preset"],
     "--no-preset applies when a run starts"),
    (["train", "sac", "Pendulum-P-v1", "--steps", "200", "--best-metric", "success_rate"],
     "best_metric success_rate: Pendulum-P-v1 does not report success"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{h5_env3}", "--steps", "10",
      "--best-metric", "normalized_score"],  # no reference scores: refused before training
     "best_metric normalized_score needs a dataset with reference scores"),
    (["train", "bc", "Pendulum-P-v1", "--dataset", "{h5_env3}", "--prev-reward"],
     "was collected in Pendulum-v1, whose observations are not those a Pendulum-P-v1 policy"),
    # datasets whose content does not fit, flags that would be ignored (session 30's sweep)
    (["train", "iql", "Pendulum-v1", "--dataset", "{rewards_2col_h5}"],
     "rewards has shape (8, 2); expected (8,), one value per row"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{next_obs_7_h5}"],
     "next_observations have 7 numbers a row, observations 3"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{half_terminal_h5}"],
     "terminals must be booleans (0 or 1), found 0.5"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{other_env_h5}"],
     "oe.hdf5 was collected in MountainCarContinuous-v0, not Pendulum-v1"),
    (["train", "bc", "Pendulum-v1", "--dataset", "{other_env_h5}"],
     "oe.hdf5 was collected in MountainCarContinuous-v0, not Pendulum-v1"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{h5}", "--dataset-size", "1000000000"],
     "dataset_size 1000000000 is more than"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{h5}", "--action-repeat", "2"],
     "ok.hdf5 was collected with action_repeat 1; this run has 2"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{h5}", "--online-steps", "100", "--num-envs", "3"],
     "online_steps (100) must be a multiple of num_envs (3)"),
    (["train", "sac", "Pendulum-v1", "--dataset", "{h5}"],
     "--dataset is only read with --offline-ratio above 0"),
    (["report", "{empty_dir}", "--seed", "-1"], "seed must be in [0, 2**32)"),
    (["collect", "--random", "--env", "Pendulum-v1", "--seed", "-1", "--name", "x-v0"],
     "seed must be in [0, 2**32)"),
    (["collect", "--random", "--env", "Pendulum-v1", "--noise", "0.5", "--name", "x-v0"],
     "--random acts uniformly at random: --noise would be ignored"),
    (["collect", "{run_pendulum}", "--concat", "a-v0", "b-v0", "--name", "x-v0"],
     "--concat joins datasets as they are: a run directory would be ignored"),
    (["collect", "{run_pendulum}", "--from-buffer", "--steps", "50", "--name", "x-v0"],
     "--from-buffer writes the run's buffer as it is: --steps would be ignored"),
    (["collect", "--concat", "a-v0", "a-v0", "--name", "x-v0"], "--concat names a-v0 twice"),
    (["collect", "--concat", "a-v0", "b-v0", "--seed", "3", "--name", "x-v0"],
     "--concat joins datasets as they are: --seed would be ignored"),
    (["collect", "--concat", "{h5}", "--name", "x-v0"], "cannot tell which env"),
    (["collect", "--concat", "{h5_env3}", "{h5_env5}", "--name", "x-v0"],
     "cannot concatenate datasets of different observation or action widths"),
    (["sweep", "iql", "Pendulum-v1", "--set", "dataset={other_env_h5}", "--dir", "{sweep_dir}"],
     "oe.hdf5 was collected in MountainCarContinuous-v0, not Pendulum-v1"),
    # session 32's sweep of new paths
    (["train", "sac", "Hopper-v3"], "environment 'Hopper-v3' cannot be made here (No module "
     "named 'mujoco_py'"),
    (["train", "sac", "Hopper-v3"], "; use Hopper-v5, Hopper-v4"),
    (["train", "sac", "dmc:cheetah-run", "--obs-keys", "position"],
     "--obs-keys does not apply to dmc:cheetah-run"),
    (["sweep", "sac", "Pendulum-v1", "--dir", "{sweep_damaged}"], "sweep.json is damaged"),
    (["sweep", "sac", "Pendulum-v1", "--dir", "{sweep_list}"], "sweep.json is not a sweep record"),
    (["sweep", "sac", "Pendulum-v1", "--dir", "{sweep_is_run}"], "is a run directory, not a sweep's"),
    (["sweep", "sac", "Pendulum-v1", "--set", "lr=0.001,1e-3", "--dir", "{sweep_dir}"],
     "--set lr: '0.001' and '1e-3' are the same value"),
    (["sweep", "iql", "Pendulum-v1", "--set", "dataset={h5_twice}", "--dir", "{sweep_dir}"],
     "are the same value; give each value once"),
    (["report", "{runs_no_env}"], "its algo and run.env must be names"),
    (["report", "{runs_text_seed}"], "seed 'zero'"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{h5}", "--learning-starts", "100",
      "--no-random-warmup"], "--learning-starts, --no-random-warmup: settings of the online "
     "phase, which this run does not have (give --online-steps, or drop them)"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{h5}", "--steps", "200",
      "--actor-decay-steps", "100"], "--steps 200 is past actor_decay_steps 100"),
    (["train", "iql", "Pendulum-v1", "--dataset", "{h5}", "--online-steps", "100",
      "--actor-decay-steps", "50"], "--actor-decay-steps: with --online-steps the actor keeps"),
    (["train", "mopo", "Pendulum-v1", "--dataset", "{h5}", "--steps-per-call", "50"],
     "--steps-per-call: not used by this algorithm"),
    (["train", "bc", "Pendulum-v1", "--dataset", "{h5}", "--num-envs", "4"],
     "--num-envs: behaviour cloning steps no env while it trains"),
    (["train", "td3bc", "Pendulum-v1", "--dataset", "{h5}", "--num-envs", "4"],
     "--num-envs: settings of the online phase, which this run does not have"),
    (["train", "mopo", "Pendulum-v1", "--dataset", "{h5}", "--real-ratio", "0"],
     "gives 0 dataset rows per batch: mopo mixes dataset and model rows"),
    (["train", "mopo", "Pendulum-v1", "--dataset", "{h5}", "--batch-size", "8"],
     "real_ratio 0.05 of batch_size 8 gives 0 dataset rows"),
    (["train", "mopo", "Pendulum-v1", "--dataset", "{h5}", "--utd-ratio", "2"],
     "--utd-ratio: settings of the online phase, which this run does not have (it has no "
     "online phase: drop them)"),
    (["sweep", "iql", "Pendulum-v1", "--set", "dataset={h5}", "--set", "n_step=3", "--dir",
      "{sweep_dir}"], "--n-step: settings of the online phase"),
    (["make-dataset", "antmaze-umaze-v1", "--reacher", "{reacher_no_ckpt}", "--noise", "-1"],
     "noise must be a number >= 0, got -1.0"),  # the setting, not the missing checkpoint
    (["video", "{run_missing_keys}", "--size", "5000", "100"],
     "size must be between 16x16 and 4096x4096 pixels"),
    # an empty value (an unset shell variable) meant the current folder or the default
    (["train", "sac", "Pendulum-v1", "--runs-dir", ""], "--runs-dir was given an empty value"),
    (["video", "{run_missing_keys}", "--out="], "--out was given an empty value"),
    (["report", "{run_missing_keys}", "--out", ""], "--out was given an empty value"),
    (["eval", ""], "an empty argument after 'eval'"),
]


@pytest.mark.parametrize("argv,msg", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input(argv, msg, files, tmp_path, capsys, monkeypatch):
    minari = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari))
    runs = tmp_path / "runs"
    argv = [files(a[1:-1]) if a.startswith("{") else a for a in argv]
    argv = [f"{a.split('=')[0]}={files(a.split('={')[1][:-1])}" if "={" in a else a
            for a in argv]  # --set NAME={input}
    if argv[0] == "train" and "--runs-dir" not in argv and "--resume" not in argv:
        argv += ["--runs-dir", str(runs)]
    before = {p for p in tmp_path.rglob("*")}
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert msg in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and err.startswith("contrl: error:")
    assert not runs.exists(), "a run directory (or the runs folder it made) was left behind"
    assert not (minari.exists() and any(minari.iterdir())), "a dataset was left behind"
    assert {p for p in tmp_path.rglob("*")} <= before | {runs, minari}


def test_the_table_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_runs_dir_is_refused_before_training(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    assert main(["train", "sac", "Pendulum-v1", "--runs-dir", str(ro)]) == 2
    assert "cannot write" in capsys.readouterr().err
