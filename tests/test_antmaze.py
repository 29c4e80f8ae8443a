"""AntMaze datasets: episodes of fixed length ending in timeouts, the env's sparse reward, a
fresh goal once one is reached, the flat layout with its metadata, resuming a collection."""
import numpy as np
import pytest

from contrl.data.antmaze import DATASETS, _Episode, cell_sets, make_maze_dataset
from contrl.data.datasets import dataset_metadata, load_dataset
from contrl.envs import known_env_ids, make_env
from contrl.envs.antgoal import MAZE_OBS_KEYS
from contrl.policy import Stateless


class Still(Stateless):
    """A reacher that does nothing: the data's motion is the action noise alone."""

    def eval_actions(self, obs, carry):
        assert obs.shape[1] == 29  # the reacher's inputs: 27 ant numbers + relative waypoint
        return np.zeros((len(obs), 8), np.float32), carry


@pytest.fixture
def minari(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_a_reached_goal_is_replaced_at_once():
    spec = DATASETS["antmaze-umaze-v0"]
    env = make_env(spec.env_id, obs_keys=MAZE_OBS_KEYS)
    ep = _Episode(env, 0, 0, *cell_sets(spec, env.unwrapped.maze.maze_map))
    maze = env.unwrapped
    np.testing.assert_allclose(ep.obs[0][-2:], maze.goal, rtol=1e-6)
    assert maze.maze.cell_xy_to_rowcol(maze.goal).tolist() == [1, 1]  # umaze: goal top left
    ep.step(np.zeros(8, np.float32))
    maze.goal = maze.data.qpos[:2].copy()  # as if the ant stood at its goal
    old_goal = maze.goal.copy()
    ep.step(np.zeros(8, np.float32))
    assert maze.maze.cell_xy_to_rowcol(maze.goal).tolist() == [3, 1]  # back to the start's cell
    np.testing.assert_allclose(ep.obs[-1][-2:], maze.goal, rtol=1e-6)  # seen from the next step
    # the reaching step closed a stored episode with a termination; its last observation is
    # the real one, still holding the goal it reached
    (reached,) = ep.arrays()
    assert reached["rewards"].tolist() == [0.0, 1.0]
    assert reached["terminations"].tolist() == [False, True] and not reached["truncations"].any()
    np.testing.assert_allclose(reached["observations"][-1][-2:], old_goal, rtol=1e-6)
    ep.step(np.zeros(8, np.float32))
    closed, rest = ep.arrays()  # the open one ends in the timeout
    assert len(rest["rewards"]) == 1 and rest["truncations"].tolist() == [True]
    np.testing.assert_array_equal(rest["observations"][0][:29], closed["observations"][-1][:29])


def test_dataset_layout_rewards_timeouts_and_exact_resume(minari, tmp_path, monkeypatch):
    kw = dict(steps=120, episode_steps=60, num_envs=1, noise=0.2, seed=3)
    calls = []
    out = make_maze_dataset("antmaze-umaze-v0", Still(), {"run": "test"},
                            stop=lambda: not calls.append(1), **kw)  # stops after chunk 1
    assert out["interrupted"] and out["episodes_done"] == 1
    assert (minari / ".antmaze-umaze-v0.parts" / "part-000000.npz").exists()
    out = make_maze_dataset("antmaze-umaze-v0", Still(), {"run": "test"}, **kw)  # resumes
    assert out["episodes"] == 2 and not (minari / ".antmaze-umaze-v0.parts").exists()
    ds = load_dataset("antmaze-umaze-v0")
    assert ds.obs_dim == 31 and ds.env_id == "AntMaze_UMaze_Fixed-v5" and len(ds.rewards) == 120
    assert np.flatnonzero(ds.timeouts).tolist() == [59, 119]
    # the reward is the env's: 1 exactly where a step ends within 0.45 m of its goal, the goal
    # a transition's two observations share; a reached goal terminates its stored episode
    reached = np.linalg.norm(ds.next_observations[:, 27:29] - ds.observations[:, 29:31], axis=1)
    np.testing.assert_array_equal(ds.rewards, (reached <= 0.45).astype(np.float32))
    np.testing.assert_array_equal(ds.next_observations[:, 29:31], ds.observations[:, 29:31])
    np.testing.assert_array_equal(ds.terminals, ds.rewards == 1)
    meta = dataset_metadata("antmaze-umaze-v0")["contrl"]
    assert meta["noise"] == 0.2 and meta["cells"] == "fixed" and meta["episode_steps"] == 60
    assert meta["obs_keys"] == list(MAZE_OBS_KEYS) and meta["goal_cells"] == [[1, 1], [3, 1]]
    # an uninterrupted collection writes the same data
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "straight"))
    make_maze_dataset("antmaze-umaze-v0", Still(), {"run": "test"}, **kw)
    straight = load_dataset("antmaze-umaze-v0")
    np.testing.assert_array_equal(ds.observations, straight.observations)
    np.testing.assert_array_equal(ds.actions, straight.actions)


def test_play_and_diverse_cells():
    medium = make_env("AntMaze_Medium_Diverse_GR-v5").unwrapped.maze.maze_map
    starts, goals = cell_sets(DATASETS["antmaze-medium-play-v0"], medium)
    assert starts == goals == [(1, 1), (2, 6), (5, 1), (6, 5)]  # the map's hand-picked cells
    starts, goals = cell_sets(DATASETS["antmaze-medium-diverse-v0"], medium)
    assert len(starts) == len(goals) == sum(v != 1 for row in medium for v in row)


def test_fixed_umaze_has_d4rls_start_and_goal():
    """AntMaze_UMaze_Fixed-v5 (what antmaze-umaze-v0 is evaluated on) always starts bottom
    left and aims top left; gymnasium-robotics' AntMaze_UMaze-v5 draws both at random."""
    env = make_env("AntMaze_UMaze_Fixed-v5")
    maze = env.unwrapped.maze
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        assert maze.cell_xy_to_rowcol(obs[27:29]).tolist() == [3, 1]
        assert maze.cell_xy_to_rowcol(obs[29:31]).tolist() == [1, 1]
    assert env.spec.max_episode_steps == 700
    assert "AntMaze_UMaze_Fixed-v5" in known_env_ids(dmc=False)
