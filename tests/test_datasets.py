"""Datasets: Minari round trip, Minari DataCollector datasets, D4RL-style HDF5, bad input."""
import json
import re
import shutil

import gymnasium as gym
import h5py
import numpy as np
import pytest

from contrl.data.collect import rollout_episodes
from contrl.data.datasets import (Dataset, DatasetError, list_datasets, load_dataset, normalized_score,
                                  write_minari)
from contrl.policy import RandomPolicy


@pytest.fixture
def minari_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_rollout_gives_exact_steps_and_episode_ends():
    eps = rollout_episodes(RandomPolicy(1, 0), "Pendulum-v1", 1000, seed=0, num_envs=3)
    assert sum(len(e["rewards"]) for e in eps) == 1000
    for e in eps:
        assert len(e["observations"]) == len(e["actions"]) + 1
        assert e["truncations"][-1] or e["terminations"][-1]   # every episode has an end
        assert not any(e["truncations"][:-1])
    # Pendulum: 200-step time limit; 1000 steps on 3 envs = 333/333/334 -> 1 full episode each
    assert sorted(len(e["rewards"]) for e in eps if not e.get("cut")) == [200, 200, 200]


def test_minari_round_trip(minari_dir):
    import minari
    eps = rollout_episodes(RandomPolicy(1, 0), "Pendulum-v1", 500, seed=0, num_envs=2)
    path = write_minari("pendulum-test-v0", eps, "Pendulum-v1", {"policy": "random"},
                        ref_min=-1200.0, ref_max=-150.0)
    assert path == minari_dir / "pendulum-test-v0"
    assert not [p for p in minari_dir.iterdir() if p.name.startswith(".")]  # temp dir gone
    m = minari.load_dataset("pendulum-test-v0")  # Minari itself opens what contrl writes
    assert m.total_steps == 500 and m.total_episodes == len(eps)
    assert m.storage.metadata["ref_max_score"] == -150.0
    first = next(m.iterate_episodes())
    np.testing.assert_allclose(first.actions, 2.0 * np.asarray(eps[0]["actions"]), atol=1e-6)
    ds = load_dataset("pendulum-test-v0")  # back in contrl's units ([-1, 1])
    assert len(ds) == 500 and ds.env_id == "Pendulum-v1"
    np.testing.assert_allclose(ds.actions[:len(eps[0]["actions"])], eps[0]["actions"], atol=1e-6)
    np.testing.assert_allclose(ds.next_observations[0], eps[0]["observations"][1])
    assert ds.normalized_score(-150.0) == pytest.approx(100.0)
    assert [r["id"] for r in list_datasets()] == ["pendulum-test-v0"]
    with pytest.raises(DatasetError, match="already exists"):
        write_minari("pendulum-test-v0", eps, "Pendulum-v1", {})
    eps[1]["actions"] = np.asarray(eps[1]["actions"], np.float32)
    eps[1]["actions"][2] = np.nan  # e.g. a collection with noise nan: refused, nothing written
    with pytest.raises(DatasetError, match=r"pendulum-nan-v0 \(not written\): actions has a "
                       r"non-finite value \(nan\)"):
        write_minari("pendulum-nan-v0", eps, "Pendulum-v1", {})
    assert not (minari_dir / "pendulum-nan-v0").exists()


def test_reads_a_minari_data_collector_dataset(minari_dir):
    import minari
    env = minari.DataCollector(gym.make("Pendulum-v1"))
    env.reset(seed=0)
    for _ in range(2):
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            done = term or trunc
        env.reset()
    with pytest.warns(UserWarning):
        env.create_dataset("pendulum-collector-v0")
    ds = load_dataset("pendulum-collector-v0")
    assert len(ds) == 400 and ds.env_id == "Pendulum-v1"
    assert ds.timeouts.sum() == 2 and not ds.terminals.any()
    assert np.abs(ds.actions).max() <= 1.0  # rescaled from Pendulum's [-2, 2]
    ds.check_env("Pendulum-v1", 3, 1)
    with pytest.raises(DatasetError, match="3-dim observations; Hopper-v5 has 11"):
        ds.check_env("Hopper-v5", 11, 3)


def _zeros(obs_dim, action_dim, name, made_in, n=4):
    """A dataset of ``n`` zero rows recorded (its metadata says) in the env ``made_in``."""
    return Dataset(np.zeros((n, obs_dim), np.float32), np.zeros((n, action_dim), np.float32),
                   np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool),
                   np.zeros((n, obs_dim), np.float32), np.zeros(0), np.zeros(n, bool), name=name,
                   metadata={"env_id": made_in})


def test_maze_data_of_the_other_ant_is_refused():
    """Data collected with Gymnasium's ant (the _Fixed mazes) do not fit the _D4RL mazes."""
    ds = _zeros(31, 8, "antmaze-umaze-v0", "AntMaze_UMaze_Fixed-v5")
    ds.check_env("AntMaze_UMaze_Fixed-v5", 31, 8)
    with pytest.raises(DatasetError, match="collected in AntMaze_UMaze_Fixed-v5, not "
                       "AntMaze_Medium_Fixed-v5"):  # the same ant, another maze's goals
        ds.check_env("AntMaze_Medium_Fixed-v5", 31, 8)
    with pytest.raises(DatasetError, match="collected in AntMaze_UMaze_Fixed-v5 \\(gymnasium's "
                       "ant\\); AntMaze_UMaze_D4RL-v5 has d4rl's ant"):
        ds.check_env("AntMaze_UMaze_D4RL-v5", 31, 8)


def test_data_of_another_dm_control_task_is_refused():
    """walker-walk and walker-run have the same observations and actions, not the same reward."""
    ds = _zeros(24, 6, "walker-walk-medium-v1", "dmc:walker-walk")
    ds.check_env("dmc:walker-walk", 24, 6)
    with pytest.raises(DatasetError, match="collected in dmc:walker-walk, not dmc:walker-run"):
        ds.check_env("dmc:walker-run", 24, 6)


def _h5(path, n=6, **drop_or_replace):
    arrays = {"observations": np.arange(n * 2, dtype=np.float32).reshape(n, 2),
              "actions": np.full((n, 1), 0.5, np.float32), "rewards": np.ones(n, np.float32),
              "terminals": np.array([0, 0, 1, 0, 0, 0], bool)[:n],
              "timeouts": np.array([0, 0, 0, 0, 0, 1], bool)[:n]}
    arrays.update(drop_or_replace)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            if v is not None:
                f[k] = v
    return path


def test_reads_d4rl_hdf5(tmp_path):
    ds = load_dataset(_h5(tmp_path / "d.hdf5"))
    # no next_observations: next = following row; the timeout row (5) has no next obs: dropped
    assert len(ds) == 5
    np.testing.assert_array_equal(ds.next_observations[0], [2, 3])
    assert ds.terminals.tolist() == [False, False, True, False, False]
    assert ds.timeouts.tolist() == [False] * 4 + [True]  # row 5 (timeout) dropped: 4 ends it
    np.testing.assert_array_equal(ds.episode_returns, [3.0, 3.0])
    nxt = np.arange(12, dtype=np.float32).reshape(6, 2) + 100
    ds = load_dataset(_h5(tmp_path / "e.hdf5", next_observations=nxt))
    assert len(ds) == 6 and ds.timeouts.tolist() == [False] * 5 + [True]
    np.testing.assert_array_equal(ds.next_observations, nxt)


@pytest.mark.parametrize("change, msg", [
    ({"timeouts": None}, "lacks timeouts"),
    ({"rewards": np.ones(4, np.float32)}, "lengths differ"),
])
def test_bad_hdf5_is_refused(tmp_path, change, msg):
    with pytest.raises(DatasetError, match=msg):
        load_dataset(_h5(tmp_path / "bad.hdf5", **change))


def test_unknown_dataset_and_non_hdf5_file(tmp_path, minari_dir):
    with pytest.raises(DatasetError, match="no dataset 'nope-v0'"):
        load_dataset("nope-v0")
    junk = tmp_path / "junk.hdf5"
    junk.write_text("not hdf5")
    with pytest.raises(DatasetError, match="cannot open"):
        load_dataset(junk)


def test_fingerprint_tells_same_sized_datasets_apart(tmp_path):
    a = load_dataset(_h5(tmp_path / "a.hdf5"))
    same = load_dataset(_h5(tmp_path / "b.hdf5"))  # same contents, another file
    timeout_moved = load_dataset(_h5(tmp_path / "c.hdf5",
                                     timeouts=np.array([0, 1, 0, 0, 0, 1], bool)))
    reward = load_dataset(_h5(tmp_path / "d.hdf5", rewards=np.r_[2, np.ones(5)].astype("f4")))
    assert len(a) == len(same) == len(reward) and a.fingerprint == same.fingerprint
    assert len({a.fingerprint, timeout_moved.fingerprint, reward.fingerprint}) == 3
    assert a.head(4).fingerprint != a.fingerprint
    assert re.fullmatch(r"d1:[0-9a-f]{16}", a.fingerprint)


def test_episode_returns_count_complete_episodes_only(tmp_path, minari_dir):
    """Returns (the IQL reward scale reads their spread) of complete episodes only: not the
    rows after the last end (data stopping mid-episode, or head()), which were added to the
    episode before, nor the episodes a collection cut at its step budget."""
    ones = np.ones(8, np.float32)
    # rows 0-2 end by termination, 3-5 by timeout, 6-7 stop mid-episode
    ds = load_dataset(_h5(tmp_path / "d.hdf5", n=8, rewards=np.arange(1, 9, dtype=np.float32),
                          terminals=np.array([0, 0, 1, 0, 0, 0, 0, 0], bool),
                          timeouts=np.array([0, 0, 0, 0, 0, 1, 0, 0], bool),
                          next_observations=np.zeros((8, 2), np.float32)))
    np.testing.assert_array_equal(ds.episode_returns, [6.0, 15.0])
    np.testing.assert_array_equal(ds.head(5).episode_returns, [6.0])  # 3-4 is a piece
    # without next_observations: the timeout row is dropped, rows 6-7 still uncounted
    ds = load_dataset(_h5(tmp_path / "e.hdf5", n=8, rewards=ones,
                          terminals=np.array([0, 0, 1, 0, 0, 0, 0, 0], bool),
                          timeouts=np.array([0, 0, 0, 0, 0, 1, 0, 0], bool)))
    np.testing.assert_array_equal(ds.episode_returns, [3.0, 3.0])
    eps = [{"observations": np.zeros((n + 1, 3), np.float32), "actions": np.zeros((n, 1), np.float32),
            "rewards": np.full(n, r, np.float32), "terminations": np.zeros(n, bool),
            "truncations": np.r_[np.zeros(n - 1, bool), True]} for n, r in ((4, 5.0), (4, 6.0), (2, 1.0))]
    write_minari("pendulum-cut-v0", eps, "Pendulum-v1", {"cut_episodes": [2]})
    ds = load_dataset("pendulum-cut-v0")
    np.testing.assert_array_equal(ds.episode_returns, [20.0, 24.0])
    np.testing.assert_array_equal(ds.head(6).episode_returns, [20.0])


def test_returns_to_go_and_normalized_score(tmp_path):
    ds = load_dataset(_h5(tmp_path / "d.hdf5", next_observations=np.zeros((6, 2), np.float32)))
    # episodes: rows 0-2 (terminal at 2), rows 3-5 (timeout at 5); gamma 0.5
    np.testing.assert_allclose(ds.returns_to_go(0.5), [1.75, 1.5, 1.0, 1.75, 1.5, 1.0])
    assert normalized_score(50.0, 0.0, 200.0) == 25.0


def test_flat_copy_makes_reloads_fast_and_follows_changes(minari_dir):
    import os

    from contrl.data.datasets import CACHE_NAME
    eps = rollout_episodes(RandomPolicy(1, 0), "Pendulum-v1", 600, seed=0, num_envs=2)
    path = write_minari("pendulum-cache-v0", eps, "Pendulum-v1", {})
    first = load_dataset("pendulum-cache-v0")
    cache = path / "data" / CACHE_NAME
    assert cache.is_file()
    again = load_dataset("pendulum-cache-v0")
    for k in ("observations", "actions", "rewards", "terminals", "timeouts",
              "next_observations", "episode_returns", "episode_ends"):
        np.testing.assert_array_equal(getattr(first, k), getattr(again, k))
    assert again.ref_min_score == first.ref_min_score and again.env_id == "Pendulum-v1"
    # a stale copy (the episodes file changed) is rebuilt, an unreadable one too
    before = cache.stat().st_mtime_ns
    hdf5 = path / "data" / "main_data.hdf5"
    os.utime(hdf5, ns=(hdf5.stat().st_atime_ns, hdf5.stat().st_mtime_ns + 10**9))
    load_dataset("pendulum-cache-v0")
    assert cache.stat().st_mtime_ns != before
    cache.write_bytes(b"garbage")
    np.testing.assert_array_equal(load_dataset("pendulum-cache-v0").rewards, first.rewards)
    assert not [p for p in (path / "data").iterdir() if p.name.startswith(".")]
    # a damaged episodes file (no usable copy beside it) is named in one error
    cache.unlink()
    hdf5.write_bytes(b"garbage" * 100)
    with pytest.raises(DatasetError, match="cannot read the episodes of Minari dataset .*pendulum-cache-v0"):
        load_dataset("pendulum-cache-v0")


def test_datasets_with_unreadable_metadata_are_listed_with_the_problem(minari_dir):
    eps = rollout_episodes(RandomPolicy(1, 0), "Pendulum-v1", 200, seed=0)
    write_minari("pendulum-ok-v0", eps, "Pendulum-v1", {})
    for name, text in (("list-v0", "[1]"), ("broken-v0", "{oops"), ("entry-v0", '{"contrl": 3}')):
        (minari_dir / name / "data").mkdir(parents=True)
        (minari_dir / name / "data" / "metadata.json").write_text(text)
    rows = {r["id"]: r for r in list_datasets()}
    assert rows["pendulum-ok-v0"]["steps"] == 200 and "problem" not in rows["pendulum-ok-v0"]
    assert "not a Minari metadata object" in rows["list-v0"]["problem"]
    assert "not valid JSON" in rows["broken-v0"]["problem"]
    assert "'contrl' entry is not an object" in rows["entry-v0"]["problem"]
    shutil.copytree(minari_dir / "pendulum-ok-v0", minari_dir / "edited-v0")
    meta_path = minari_dir / "edited-v0" / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["contrl"]["average_return"], meta["total_steps"] = "abc", {"x": 1}
    meta_path.write_text(json.dumps(meta))
    rows = {r["id"]: r for r in list_datasets()}  # listed as unreadable, not a crash
    assert rows["edited-v0"]["problem"] == ("metadata.json: total_steps is {'x': 1}, "
                                            "contrl.average_return is 'abc'")
    shutil.rmtree(minari_dir / "edited-v0")
    shutil.copytree(minari_dir / "pendulum-ok-v0", minari_dir / "pendulum-copy-v0")
    rows = {r["id"]: r for r in list_datasets()}  # listed by the folder that loads it
    assert rows["pendulum-copy-v0"]["metadata_id"] == "pendulum-ok-v0"
    assert "metadata_id" not in rows["pendulum-ok-v0"]
    assert len(load_dataset("pendulum-copy-v0")) == 200


def test_a_datasets_folder_that_is_a_file_is_named(tmp_path, monkeypatch):
    from contrl.errors import ContrlError
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "afile"))
    with pytest.raises(ContrlError, match="the datasets folder .*afile is a file"):
        list_datasets()  # was: "no datasets in ...afile"; a collection failed only at its end


def test_a_dataset_of_another_env_is_refused_by_name(minari_dir):
    # same shapes (2-dim observations, 1-dim actions), another environment: named as such,
    # before any question of action units
    eps = rollout_episodes(RandomPolicy(1, 0), "MountainCarContinuous-v0", 50, seed=0)
    write_minari("mcc-rand-v0", eps, "MountainCarContinuous-v0", {})
    with pytest.raises(DatasetError, match="dataset mcc-rand-v0 was collected in "
                       "MountainCarContinuous-v0, not Pendulum-P-v1"):
        load_dataset("mcc-rand-v0", "Pendulum-P-v1")
    assert len(load_dataset("mcc-rand-v0", "MountainCarContinuous-v0")) == 50
    # versions and variants of one environment are the same environment
    from contrl.data.datasets import env_family
    assert env_family("Hopper-v5") == env_family("hopper-medium-v2") == env_family("Hopper-P-v5")
    assert env_family("AntMaze_UMaze_D4RL-v5") == env_family("AntMaze_Medium_Fixed-v5")
    assert env_family("dmc:walker-walk") == env_family("dmc:walker-run") != env_family("Walker2d-v5")
    # rewards: a dm_control task, a maze's layout (any goal variant), else the family
    from contrl.data.datasets import env_task
    assert env_task("dmc:walker-walk") != env_task("dmc:walker-run")
    assert env_task("AntMaze_UMaze_D4RL-v5") == env_task("AntMaze_UMaze_Fixed-v5") == "antmaze_umaze"
    assert env_task("AntMaze_Medium_Diverse_GR-v5") == env_task("antmaze-medium-play-v2") != \
        env_task("AntMaze_UMaze-v5")
    assert env_task("Hopper-P-v5") == env_task("Hopper-v4") == "hopper"
    assert env_task("dm_control/walker-walk-v0") == env_task("dmc:walker-walk")


def test_dmc_dataset_keeps_its_reference_scores(minari_dir):
    # Minari stores reference scores only for gymnasium envs; contrl keeps its own copy
    eps = rollout_episodes(RandomPolicy(1, 0), "dmc:cartpole-balance", 30, seed=0)
    write_minari("cartpole-test-v0", eps, "dmc:cartpole-balance", {"policy": "random"},
                 ref_min=10.0, ref_max=110.0)
    ds = load_dataset("cartpole-test-v0")
    assert ds.env_id == "dmc:cartpole-balance" and len(ds) == 30
    assert (ds.ref_min_score, ds.ref_max_score) == (10.0, 110.0)
    assert ds.normalized_score(60.0) == pytest.approx(50.0)


def test_action_units_round_trip_by_hand():
    from contrl.data.datasets import from_unit, to_unit
    low, high = np.asarray([-2.0, 0.0]), np.asarray([2.0, 10.0])
    np.testing.assert_allclose(to_unit(np.asarray([[1.0, 2.5]]), low, high), [[0.5, -0.5]])
    np.testing.assert_allclose(from_unit(np.asarray([[0.5, -0.5]]), low, high), [[1.0, 2.5]])
    np.testing.assert_allclose(from_unit(np.asarray([[3.0, -3.0]]), low, high), [[2.0, 0.0]])  # clipped


def test_dict_observation_datasets_are_flattened_like_the_env(minari_dir, tmp_path):
    """Goal-reaching data: Minari episodes with dict observations, contrl's own collection on
    a maze, and an HDF5 file whose observations are a group, all read in make_env's order."""
    import gymnasium as gym
    import minari
    from minari.data_collector import EpisodeBuffer

    from contrl.data.collect import collect
    from contrl.envs import make_env
    T = 5
    obs = {"observation": np.arange((T + 1) * 3, dtype=np.float32).reshape(T + 1, 3),
           "achieved_goal": np.full((T + 1, 2), 7.0, np.float32),
           "desired_goal": np.full((T + 1, 2), 9.0, np.float32)}
    space = gym.spaces.Dict({k: gym.spaces.Box(-np.inf, np.inf, v.shape[1:], np.float32)
                             for k, v in obs.items()})
    buf = EpisodeBuffer(id=0, observations=obs, actions=np.zeros((T, 8), np.float32),
                        rewards=[0.0] * T, terminations=[False] * T,
                        truncations=[False] * (T - 1) + [True], infos={})
    with pytest.warns(UserWarning):
        minari.create_dataset_from_buffers(
            "maze-dict-v0", [buf], observation_space=space,
            action_space=gym.spaces.Box(-1, 1, (8,), np.float32), author="t", author_email="t",
            code_permalink="t", algorithm_name="t")
    ds = load_dataset("maze-dict-v0", "AntMaze_UMaze-v5")  # default: observation, achieved, desired
    np.testing.assert_array_equal(ds.observations[1], [3, 4, 5, 7, 7, 9, 9])
    np.testing.assert_array_equal(ds.next_observations[-1], [15, 16, 17, 7, 7, 9, 9])
    ds = load_dataset("maze-dict-v0", "AntMaze_UMaze-v5", obs_keys=("desired_goal", "observation"))
    np.testing.assert_array_equal(ds.observations[0], [9, 9, 0, 1, 2])
    with pytest.raises(DatasetError, match="observation keys goal not among"):
        load_dataset("maze-dict-v0", "AntMaze_UMaze-v5", obs_keys=("goal",))
    # contrl's own maze data: flat vectors in make_env's order
    out = collect(None, "AntMaze_UMaze-v5", "antmaze-random-v0", 50, num_envs=1, ref_episodes=1)
    maze = load_dataset("antmaze-random-v0")
    assert out["steps"] == 50 and maze.obs_dim == make_env("AntMaze_UMaze-v5").observation_space.shape[0]
    with pytest.raises(DatasetError, match="antmaze-random-v0 stores its observations flat, "
                       "keys in the order observation, achieved_goal, desired_goal, not "
                       "observation, desired_goal, achieved_goal: give --obs-keys observation "
                       "achieved_goal desired_goal"):  # a run reading the goals swapped
        load_dataset("antmaze-random-v0", obs_keys=("observation", "desired_goal", "achieved_goal"))
    # D4RL-style HDF5 with an observations group
    path = tmp_path / "goal.hdf5"
    with h5py.File(path, "w") as f:
        g = f.create_group("observations")
        for k in ("observation", "desired_goal"):
            g[k] = obs[k][:T]
        f["actions"] = np.zeros((T, 2), np.float32)
        f["rewards"] = np.zeros(T, np.float32)
        f["terminals"] = np.zeros(T, bool)
        f["timeouts"] = np.array([0, 0, 0, 0, 1], bool)
    h5 = load_dataset(path, "PointMaze_UMaze-v3")
    np.testing.assert_array_equal(h5.observations[0], [0, 1, 2, 9, 9])


def test_hdf5_action_units_are_declared_not_guessed(tmp_path):
    """Pendulum torques of 0.5 (the env's range is [-2, 2]) are a quarter of the scaled
    range in env units, and 0.5 of it when the file or the flag says scaled."""
    path = _h5(tmp_path / "p.hdf5", observations=np.zeros((6, 3), np.float32))
    env_units = load_dataset(path, "Pendulum-v1")  # the convention: the env's own units
    np.testing.assert_allclose(env_units.actions, 0.25)
    scaled = load_dataset(path, "Pendulum-v1", action_units="scaled")
    np.testing.assert_allclose(scaled.actions, 0.5)
    with h5py.File(path, "a") as f:
        f.attrs["action_units"] = "scaled"  # the file's own declaration wins
    np.testing.assert_allclose(load_dataset(path, "Pendulum-v1").actions, 0.5)
    wide = _h5(tmp_path / "w.hdf5", observations=np.zeros((6, 3), np.float32),
               actions=np.full((6, 1), 1.5, np.float32))
    np.testing.assert_allclose(load_dataset(wide, "Pendulum-v1").actions, 0.75)
    with pytest.raises(DatasetError, match=r"actions at row 0 \(\[1.5\]\) lie outside the range of scaled"):
        load_dataset(wide, "Pendulum-v1", action_units="scaled")
    with pytest.raises(DatasetError, match="outside the range of Pendulum-v1's own units"):
        load_dataset(_h5(tmp_path / "x.hdf5", observations=np.zeros((6, 3), np.float32),
                         actions=np.full((6, 1), 3.0, np.float32)), "Pendulum-v1")


# ------------------------------------------------------------------ windows (recurrent agents)
def _episodes_dataset():
    """Three hand-made episodes, observations numbered by episode: A (10, 11, 12) ends in a
    termination (final observation 13), B (20, 21) in a timeout (final 22), C (30 .. 33) is
    cut by the end of the data (final 34). Rewards 1, 2, 3; each action is obs / 100."""
    from contrl.data.datasets import Dataset
    obs = np.array([10, 11, 12, 20, 21, 30, 31, 32, 33], np.float32)[:, None]
    term = np.zeros(9, bool)
    term[2] = True
    timeout = np.zeros(9, bool)
    timeout[4] = True
    ends = term | timeout
    ends[-1] = True
    rew = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3], np.float32)
    return Dataset(obs, obs / 100, rew, term, timeout, obs + 1, np.array([3.0, 4.0]), ends,
                   name="hand")


EPISODE = {10: 3, 20: 2, 30: 4}  # first observation -> steps


def _episode_of(o):
    return 10 * int(o // 10)


def test_dataset_windows_stay_inside_episodes_with_terminal_and_timeout_discounts():
    ds = _episodes_dataset()
    b = ds.sample_windows(np.random.default_rng(0), 64, 0.9, 2, length=3)
    assert b.obs.shape == (2, 4, 64, 1) and b.mask.shape == (2, 3, 64)
    for kk in range(2):
        obs, mask, disc, rew = b.obs[kk, ..., 0], b.mask[kk], b.discount[kk], b.reward[kk]
        for j in range(64):
            first, n = obs[0, j], int(mask[:, j].sum())
            ep = _episode_of(first)
            assert n == min(3, EPISODE[ep] - (first - ep))
            assert mask[:n, j].all() and not mask[n:, j].any()
            # o_0 .. o_n in order, o_n the real final observation after the episode's last step
            np.testing.assert_array_equal(obs[:n + 1, j], first + np.arange(n + 1))
            np.testing.assert_allclose(b.action[kk, :n, j, 0], (first + np.arange(n)) / 100,
                                       rtol=1e-6)
            assert np.all(rew[:n, j] == {10: 1, 20: 2, 30: 3}[ep]) and np.all(rew[n:, j] == 0)
            last = first + n - 1
            # a termination (row 12) stops the bootstrap; a timeout (21) and a cut (33) keep it
            expect = np.where(first + np.arange(n) == 12, 0.0, 0.9)
            np.testing.assert_allclose(disc[:n, j], expect, rtol=1e-6)
            assert last <= ep + EPISODE[ep] - 1
    assert not b.stop.any()  # no burn-in, no detached state


def test_dataset_windows_burn_in_and_whole_episodes():
    ds = _episodes_dataset()
    b = ds.sample_windows(np.random.default_rng(1), 64, 0.9, 1, length=2, burn_in=2)
    seen = set()
    for j in range(64):
        obs, mask = b.obs[0, :, j, 0], b.mask[0, :, j]
        back = int(np.flatnonzero(mask)[0])
        s = obs[back]  # the first trained step
        ep = _episode_of(s)
        assert back == min(2, s - ep)  # burn-in from the same episode only, as much as it has
        assert obs[0] == s - back and _episode_of(obs[0]) == ep
        assert not mask[:back].any()
        assert b.stop[0, back, j] == (back > 0) and b.stop[0, :, j].sum() == (back > 0)
        seen.add(back)
    assert seen == {0, 1, 2}
    w = ds.sample_windows(np.random.default_rng(2), 32, 0.9, 1, length=5, whole_episodes=True)
    starts = w.obs[0, 0, :, 0]
    assert set(starts) == {10.0, 20.0, 30.0}
    for j, first in enumerate(starts):
        assert w.mask[0, :, j].sum() == EPISODE[int(first)]


def test_dataset_windows_join_replay_windows_along_the_batch_axis():
    from contrl.data import ReplayBuffer
    from contrl.data.batch import concat
    buf = ReplayBuffer(50, 1, 1)
    for t in range(6):
        buf.add(np.array([[50.0 + t]]), np.array([[0.0]]), np.array([1.0]), np.array([False]),
                np.array([t == 5]), np.array([[51.0 + t]]))
    online = buf.sample_windows(3, 0.9, 2, length=4, burn_in=1)
    data = _episodes_dataset().sample_windows(np.random.default_rng(0), 5, 0.9, 2, 4, 1)
    both = concat([online, data])
    for a, b, c in zip(online, data, both):
        assert a.shape[:2] == b.shape[:2] and a.shape[3:] == b.shape[3:]
        assert c.shape == a.shape[:2] + (8,) + a.shape[3:]
        np.testing.assert_array_equal(c[:, :, 3:], b)


def test_previous_action_and_reward_inputs_equal_the_env_wrappers():
    """Dataset observations with the previous action and reward appended equal what
    PreviousActionReward gives the policy, across an episode boundary."""
    from contrl.data.datasets import Dataset
    from contrl.envs.pomdp import PreviousActionReward
    env = PreviousActionReward(gym.make("Pendulum-v1", max_episode_steps=3), True, True)
    rng = np.random.default_rng(0)
    rows = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "next")}
    seen, seen_next = [], []
    for ep in range(2):
        o, _ = env.reset(seed=ep)
        done = False
        while not done:
            a = rng.uniform(-1, 1, 1).astype(np.float32)
            nxt, r, term, trunc, _ = env.step(a)
            for k, v in zip(rows, (o[:3], a, r, term, trunc, nxt[:3])):
                rows[k].append(v)
            seen.append(o)
            seen_next.append(nxt)
            o, done = nxt, term or trunc
    term, trunc = np.array(rows["term"]), np.array(rows["trunc"])
    ds = Dataset(np.array(rows["obs"]), np.array(rows["act"]), np.array(rows["rew"], np.float32),
                 term, trunc, np.array(rows["next"]), np.zeros(2), term | trunc)
    ext = ds.with_previous(action=True, reward=True)
    np.testing.assert_allclose(ext.observations, np.array(seen), rtol=1e-6)
    np.testing.assert_allclose(ext.next_observations, np.array(seen_next), rtol=1e-6)
    assert np.all(ext.observations[3, 3:] == 0)  # the second episode's first step
    only_action = ds.with_previous(action=True, reward=False)
    np.testing.assert_allclose(only_action.observations, np.array(seen)[:, :4], rtol=1e-6)


def test_data_without_episode_boundaries_is_refused_where_episodes_are_needed(tmp_path):
    from contrl.data.datasets import with_run_inputs
    ds = load_dataset(_h5(tmp_path / "n.hdf5", terminals=np.zeros(6, bool),
                          timeouts=np.zeros(6, bool)))
    with pytest.raises(DatasetError, match="has no episode boundaries .*: x"):
        ds.require_episodes("x")
    with pytest.raises(DatasetError, match="no episode boundaries"):
        with_run_inputs(ds, 3, True, False, 1)
    # a file whose only boundary is a final timeout has episodes (the timeout row is dropped
    # for want of its next observation; the row before it keeps the episode's cut)
    one = load_dataset(_h5(tmp_path / "o.hdf5", terminals=np.zeros(6, bool)))
    one.require_episodes("x")
    assert one.timeouts.tolist() == [False] * 4 + [True]
    assert with_run_inputs(one, 2, True, False, 1) is one  # already the run's width
    assert with_run_inputs(one, 3, True, False, 1).obs_dim == 3  # the previous action added
    with pytest.raises(DatasetError, match="frame_stack 2 needs data collected"):
        with_run_inputs(one, 6, True, False, 2)
