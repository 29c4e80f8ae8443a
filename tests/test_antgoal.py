"""AntGoal-v1: the goal relative to the ant's heading, the reward's terms, goals renewed on
success; the glue that drives a maze's ant towards the planner's waypoints."""
import numpy as np
import pytest

from contrl.envs import get_env_state, make_env, set_env_state
from contrl.envs.antgoal import (SUCCESS_DISTANCE, AntGoalEnv, MazeDriver, ant_xml, heading,
                                 reacher_inputs, relative_goal, split_maze_obs)
from contrl.envs.maze import MazeGeometry, upright
from contrl.envs.maze_planner import WaypointPlanner
from contrl.errors import ContrlError
from contrl.policy import Stateless
from test_maze import U_MAZE


def quat_yaw(yaw):  # a rotation by yaw about z as (w, x, y, z)
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def test_relative_goal_by_hand():
    assert heading(quat_yaw(0.3)) == pytest.approx(0.3)
    ant = np.zeros(27)
    ant[1:5] = quat_yaw(np.pi / 2)  # facing +y
    # a goal 2 m along +x from (1, 1) lies 2 m to the ant's right: (forward 0, left -2)
    np.testing.assert_allclose(relative_goal(ant, [1.0, 1.0], [3.0, 1.0]), [0.0, -2.0], atol=1e-12)
    ant[1:5] = quat_yaw(np.pi)  # facing -x: a goal at -x is straight ahead
    np.testing.assert_allclose(relative_goal(ant, [0.0, 0.0], [-1.5, 0.0]), [1.5, 0.0], atol=1e-12)
    assert reacher_inputs(ant, [0.0, 0.0], [-1.5, 0.0]).shape == (29,)


def test_env_observation_reward_and_goal_renewal():
    env = make_env("AntGoal-v1")
    obs, _ = env.reset(seed=0)
    base = env.unwrapped
    assert obs.shape == (29,) and env.spec.max_episode_steps == 500
    np.testing.assert_allclose(obs[27:], relative_goal(obs[:27], base.data.qpos[:2], base.goal),
                               rtol=1e-5, atol=1e-6)
    assert 1.0 <= np.linalg.norm(base.goal - base.data.qpos[:2]) <= 5.0
    d0 = np.linalg.norm(base.goal - base.data.qpos[:2])
    action = np.full(8, 0.5, np.float32)
    _, reward, *_, info = env.step(action)
    progress = (d0 - info["distance"]) / base.dt
    assert reward == pytest.approx(10 * progress + 1.0 - 0.5 * 8 * 0.25)  # healthy, 0.5 |a|^2
    # a goal within the success distance is reached, and a new one drawn
    saved = get_env_state(env)
    base.goal = base.data.qpos[:2] + [SUCCESS_DISTANCE / 2, 0.0]
    old_goal = base.goal.copy()
    *_, info = env.step(action)
    assert info["success"] and info["goals_reached"] == 1 and not np.allclose(base.goal, old_goal)
    set_env_state(env, saved)  # the goal is part of the exact state
    assert base.goals_reached == 0


def test_a_goal_reached_in_an_earlier_action_repeat_counts():
    """With action_repeat 2 the goal is reached in the first repeat and a new one drawn: the
    step's info still says success (it gave the second repeat's, False)."""
    env = make_env("AntGoal-v1", action_repeat=2)
    env.reset(seed=0)
    base = env.unwrapped
    base.goal = base.data.qpos[:2] + [SUCCESS_DISTANCE / 2, 0.0]
    *_, info = env.step(np.zeros(8, np.float32))
    assert info["goals_reached"] == 1 and info["success"]


def test_maze_ant_sees_the_same_27_numbers():
    maze = make_env("AntMaze_UMaze-v5")
    obs, _ = maze.reset(seed=0)
    ant, xy, goal = split_maze_obs(obs)
    inner = maze.unwrapped.ant_env
    np.testing.assert_allclose(ant, np.concatenate([inner.data.qpos[2:], inner.data.qvel]), rtol=1e-6)
    np.testing.assert_allclose(xy, inner.data.qpos[:2], rtol=1e-6)
    with pytest.raises(ContrlError, match="has 31 numbers; got 105"):
        split_maze_obs(np.zeros((1, 105)))


class Echo(Stateless):
    """A reacher whose action is its relative-goal input (padded to 8 numbers)."""

    def eval_actions(self, obs, carry):
        return np.pad(obs[:, 27:], ((0, 0), (0, 6))), carry


def test_driver_gives_the_reacher_the_next_waypoint():
    driver = MazeDriver(Echo(), WaypointPlanner(MazeGeometry.from_map(U_MAZE, 4)))
    obs = np.zeros((2, 31), np.float32)
    obs[:, 1] = 1.0  # facing +x
    obs[0, 27:] = [-4.0, 4.0, -4.0, -4.0]  # top left, goal bottom left: the door to the right
    obs[1, 27:] = [-4.0, -4.5, -4.0, -4.0]  # in the goal's cell: the goal itself
    np.testing.assert_allclose(driver.waypoints(obs), [[-2.0, 4.0], [-4.0, -4.0]])
    actions, carry = driver.eval_actions(obs, driver.initial_carry(2))
    np.testing.assert_allclose(actions[:, :2], [[2.0, 0.0], [0.0, 0.5]], atol=1e-6)  # ahead; left
    assert carry == ()


def test_v2_ends_the_episode_when_the_ant_turns_over():
    """An ant on its back (torso at 0.3 m, inside Ant-v5's healthy heights) ends a v2 episode
    and is still healthy in v1."""
    assert upright(quat_yaw(2.0)) and not upright(np.array([0.0, 1.0, 0.0, 0.0]))
    assert upright(np.array([np.cos(0.7), np.sin(0.7), 0.0, 0.0]))  # tilted 80 degrees: up
    for env_id, ends in (("AntGoal-v1", False), ("AntGoal-v2", True)):
        env = make_env(env_id)
        env.reset(seed=0)
        base = env.unwrapped
        qpos = base.data.qpos.copy()
        qpos[2], qpos[3:7] = 0.3, [0.0, 1.0, 0.0, 0.0]  # rolled onto its back
        base.set_state(qpos, np.zeros_like(base.data.qvel))
        _, reward, terminated, _, _ = env.step(np.zeros(8, np.float32))
        assert terminated == ends, env_id


@pytest.mark.parametrize("env_id, gear, dt", [
    ("AntGoal-v2", 150.0, 0.05), ("AntMaze_Medium_Fixed-v5", 150.0, 0.05),
    ("AntGoal-v3", 30.0, 0.1), ("AntMaze_Medium_D4RL-v5", 30.0, 0.1),
    ("AntMaze_UMaze_D4RL-v5", 30.0, 0.1)])
def test_ant_models(env_id, gear, dt):
    """Gymnasium's ant: 150 N m motors, 0.05 s per step; D4RL's (AntGoal-v3, the _D4RL mazes):
    30 N m, 0.1 s. Otherwise the same body: the same 27 numbers, the same joints."""
    base = make_env(env_id).unwrapped
    ant = getattr(base, "ant_env", base)
    np.testing.assert_allclose(ant.model.actuator_gear[:, 0], gear)
    np.testing.assert_allclose(ant.model.actuator_ctrlrange, [[-1.0, 1.0]] * 8)
    assert ant.dt == pytest.approx(dt)
    assert ant.model.nq == 15 and ant.model.nu == 8


def test_d4rl_ant_file_is_gymnasiums_with_two_numbers_changed():
    import xml.etree.ElementTree as ET
    ours, theirs = ET.parse(ant_xml("d4rl")).getroot(), ET.parse(ant_xml("gymnasium")).getroot()
    assert ant_xml("d4rl") == ant_xml("d4rl")  # written once, same path
    assert ours.find("option").get("timestep") == "0.02"
    assert theirs.find("option").get("timestep") == "0.01"
    for a, b in zip(ours.iter(), theirs.iter(), strict=True):
        diff = {k for k in a.attrib | b.attrib if a.get(k) != b.get(k)}
        assert diff <= ({"gear"} if a.tag == "motor" else {"timestep"} if a.tag == "option" else set())
    with pytest.raises(ContrlError, match="unknown ant model 'huge'"):
        AntGoalEnv(ant="huge")
