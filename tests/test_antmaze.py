"""AntMaze datasets: episodes of fixed length ending in timeouts, the env's sparse reward, a
fresh goal once one is reached, the flat layout with its metadata, resuming a collection."""
import numpy as np
import pytest

from contrl.config import ConfigError
from contrl.data.antmaze import (DATASETS, TURNED_OVER_STEPS, _Episode, cell_sets,
                                 collect_chunk, make_maze_dataset)
from contrl.data.datasets import dataset_metadata, load_dataset
from contrl.envs import known_env_ids, make_env
from contrl.envs.antgoal import MAZE_OBS_KEYS
from contrl.envs.maze import upright
from contrl.errors import ContrlError
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
    spec = DATASETS["antmaze-umaze-multigoal-v0"]
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


@pytest.mark.parametrize("kw, msg", [({"seed": -1}, r"seed must be in \[0, 2\*\*32\)"),
                                     ({"episode_steps": 0}, "episode_steps must be positive")])
def test_bad_collection_settings_are_refused_before_anything_is_written(minari, kw, msg):
    with pytest.raises((ContrlError, ConfigError), match=msg):
        make_maze_dataset("antmaze-umaze-v0", Still(), {"run": "test"}, steps=120, **kw)
    assert not minari.exists() or not any(minari.iterdir())


def test_play_and_diverse_cells():
    medium = make_env("AntMaze_Medium_Diverse_GR-v5").unwrapped.maze.maze_map
    starts, goals = cell_sets(DATASETS["antmaze-medium-play-multigoal-v0"], medium)
    assert starts == goals == [(1, 1), (2, 6), (5, 1), (6, 5)]  # the map's hand-picked cells
    # the single-task dataset: the same cells (read from the Diverse_GR map, the _Fixed map
    # has none marked) and D4RL's goal cell
    fixed = make_env("AntMaze_Medium_Fixed-v5").unwrapped.maze.maze_map
    starts, goals = cell_sets(DATASETS["antmaze-medium-play-v0"], fixed)
    assert starts == goals == [(1, 1), (2, 6), (5, 1), (6, 5), (6, 6)]
    starts, goals = cell_sets(DATASETS["antmaze-medium-diverse-v0"], medium)
    assert len(starts) == len(goals) == sum(v != 1 for row in medium for v in row)
    # -v2 play, as D4RL's script: goals its maps' G cells, starts every other free cell
    # (d4rl/locomotion/maze_env.py BIG_MAZE, HARDEST_MAZE; goal cells barred from resets)
    d4rl = make_env("AntMaze_Medium_D4RL-v5").unwrapped.maze.maze_map
    starts, goals = cell_sets(DATASETS["antmaze-medium-play-v2"], d4rl)
    assert goals == [(2, 6), (5, 1), (6, 5)]
    assert len(starts) == 23 and (1, 1) in starts and (6, 6) in starts
    assert not set(starts) & set(goals)
    large = make_env("AntMaze_Large_D4RL-v5").unwrapped.maze.maze_map
    starts, goals = cell_sets(DATASETS["antmaze-large-play-v2"], large)
    assert goals == [(1, 6), (3, 5), (3, 10), (5, 2), (7, 4), (7, 6), (7, 9)]
    assert len(starts) == sum(v != 1 for row in large for v in row) - 7


@pytest.mark.parametrize("env_id, start, goal, steps", [
    ("AntMaze_UMaze_Fixed-v5", [3, 1], [1, 1], 700),
    ("AntMaze_Medium_Fixed-v5", [1, 1], [6, 6], 1000),
    ("AntMaze_Large_Fixed-v5", [1, 1], [7, 9], 1000)])
def test_fixed_mazes_have_d4rls_start_and_goal(env_id, start, goal, steps):
    """The _Fixed mazes (what the D4RL-named datasets are evaluated on) always start and aim
    at D4RL's cells; gymnasium-robotics' AntMaze_UMaze-v5 etc. draw both at random."""
    env = make_env(env_id)
    maze = env.unwrapped.maze
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        assert maze.cell_xy_to_rowcol(obs[27:29]).tolist() == start
        assert maze.cell_xy_to_rowcol(obs[29:31]).tolist() == goal
    assert env.spec.max_episode_steps == steps
    assert env_id in known_env_ids(dmc=False)


def test_single_task_data_reward_the_evaluation_goal():
    """antmaze-umaze-v0 as D4RL's: whichever cell the ant is sent to, every stored observation
    holds one evaluation goal in the target cell (drawn as the eval env draws it) and the
    reward is for reaching that goal; sent to the target cell, the ant aims at that point."""
    spec = DATASETS["antmaze-umaze-v0"]
    env = make_env(spec.env_id, obs_keys=MAZE_OBS_KEYS)
    ep = _Episode(env, 0, 0, *cell_sets(spec, env.unwrapped.maze.maze_map), target=spec.target)
    maze = env.unwrapped
    assert maze.maze.cell_xy_to_rowcol(ep.eval_goal).tolist() == [1, 1]
    np.testing.assert_allclose(maze.goal, ep.eval_goal)  # first sent to the goal cell itself
    maze.goal = maze.data.qpos[:2].copy()  # as if the ant stood at the goal it was sent to
    ep.step(np.zeros(8, np.float32))
    assert maze.maze.cell_xy_to_rowcol(maze.goal).tolist() == [3, 1]  # sent back to the start
    np.testing.assert_allclose(ep.drive_obs[-2:], maze.goal)  # what the driver sees
    ep.eval_goal = maze.data.qpos[:2].copy()  # now the ant stands at the evaluation goal
    ep.step(np.zeros(8, np.float32))
    (reached,) = ep.arrays()[:1]
    assert reached["rewards"].tolist() == [0.0, 1.0]  # sent-to goal reached: no reward
    assert reached["terminations"].tolist() == [False, True]
    goals = np.concatenate([e["observations"][:, -2:] for e in ep.arrays()])
    assert maze.maze.cell_xy_to_rowcol(goals[0]).tolist() == [1, 1]
    assert len(np.unique(goals[:2], axis=0)) == 1  # one goal until the ant starts afresh


def test_an_ant_on_its_back_starts_afresh():
    spec = DATASETS["antmaze-medium-play-v0"]
    env = make_env(spec.env_id, obs_keys=MAZE_OBS_KEYS)
    ep = _Episode(env, 0, 0, *cell_sets(spec, env.unwrapped.maze.maze_map), target=spec.target,
                  restart_turned_over=True)
    ep.step(np.zeros(8, np.float32))
    data = env.unwrapped.data
    data.qpos[3:7] = [0.0, 1.0, 0.0, 0.0]  # half a turn about x: on its back
    first_goal = ep.eval_goal.copy()
    for _ in range(TURNED_OVER_STEPS):  # kept on its back a while: those states are data too
        assert not ep.step(np.zeros(8, np.float32))
        assert ep.restarts == 0
    assert ep.step(np.zeros(8, np.float32))  # restarted: collect_chunk resets its carry
    assert ep.restarts == 1
    (turned,) = ep.closed
    assert len(turned["rewards"]) == TURNED_OVER_STEPS + 2
    assert turned["truncations"][-1] and turned["truncations"].sum() == 1
    assert not turned["terminations"].any()
    assert not upright(turned["observations"][2:, 1:5]).any()  # (w, x, y, z) after the height
    assert len(ep.obs) == 1 and not ep.actions  # a fresh stored episode, from a new start
    assert not np.allclose(ep.eval_goal, first_goal)  # and a fresh evaluation goal
    assert env.unwrapped.maze.cell_xy_to_rowcol(ep.eval_goal).tolist() == [6, 6]
    # without the option the ant goes on as it is
    ep = _Episode(env, 1, 0, *cell_sets(spec, env.unwrapped.maze.maze_map), target=spec.target)
    data.qpos[3:7] = [0.0, 1.0, 0.0, 0.0]
    for _ in range(TURNED_OVER_STEPS + 1):
        ep.step(np.zeros(8, np.float32))
    assert ep.restarts == 0 and not ep.closed


def test_a_restarted_ant_starts_a_recurrent_reacher_afresh(monkeypatch):
    """The reacher's carry (here: steps seen) goes back to its start when the ant is
    restarted, as at any episode start (it ran on across the restart)."""
    import contrl.data.antmaze as antmaze

    class Counting:
        seen: list = []

        def initial_carry(self, n):
            return np.zeros((n, 1), np.float32)

        def eval_actions(self, obs, carry):
            self.seen.append(int(carry[0, 0]))
            return np.zeros((len(obs), 8), np.float32), carry + 1

    monkeypatch.setattr(antmaze, "turned_over", lambda env: True)  # on its back throughout
    driver = Counting()
    collect_chunk(driver, DATASETS["antmaze-umaze-v0"], 0, 1, TURNED_OVER_STEPS + 3, 0.0, 0,
                  restart_turned_over=True)
    assert driver.seen == list(range(TURNED_OVER_STEPS + 1)) + [0, 1]
