"""Evaluation: deterministic episodes, the policy's carry, success rates with intervals."""
import numpy as np
import pytest

from contrl.envs import make_env
from contrl.envs.maze import MazeGeometry, turned_over
from contrl.envs.maze_planner import WaypointPlanner
from contrl.evaluate import evaluate, wilson_interval
from contrl.maze_picture import draw_trace
from contrl.policy import RandomPolicy, Stateless


def test_wilson_interval_by_hand():
    # 7 of 10: p = 0.7, z = 1.96 -> centre (0.7 + 0.19208) / 1.38416, half-width 0.26455...
    low, high = wilson_interval(7, 10)
    assert low == pytest.approx(0.3968, abs=1e-4) and high == pytest.approx(0.8922, abs=1e-4)
    assert wilson_interval(0, 100)[0] == 0.0 and wilson_interval(0, 100)[1] == pytest.approx(0.037, abs=1e-3)
    assert wilson_interval(100, 100)[1] == pytest.approx(1.0)


def test_evaluation_is_repeatable_and_reports_no_success_for_plain_envs():
    r1 = evaluate(RandomPolicy(1, 0), "Pendulum-v1", 3, seed=0)
    r2 = evaluate(RandomPolicy(1, 0), "Pendulum-v1", 3, seed=0)
    assert r1 == r2 and r1["mean_length"] == 200 and "success_rate" not in r1


def test_maze_evaluation_reports_success_rate():
    result = evaluate(RandomPolicy(8, 0), "AntMaze_UMaze-v5", 2, seed=0)
    assert result["success_rate"] in (0.0, 0.5, 1.0)
    assert len(result["successes"]) == 2 and len(result["success_interval"]) == 2
    assert result["mean_length"] == 700  # a continuing task: episodes end by the time limit


class Steer(Stateless):
    """Point-mass control towards the waypoint planner's next waypoint (PointMaze's
    observation: x, y, vx, vy, then the goal)."""

    def __init__(self, planner):
        self.planner = planner

    def eval_actions(self, obs, carry):
        wp = np.stack([self.planner.next_waypoint(o[:2], o[4:6]) for o in obs])
        return np.clip(10.0 * (wp - obs[:, :2]) - obs[:, 2:4], -1.0, 1.0), carry


def test_maze_evaluation_counts_steps_to_the_goal_and_traces_paths():
    geometry = MazeGeometry.of_env(make_env("PointMaze_UMaze-v3"))
    result = evaluate(Steer(WaypointPlanner(geometry)), "PointMaze_UMaze-v3", 2, seed=0, trace=True)
    assert result["success_rate"] == 1.0
    # a sparse reward of 1 per step at the goal, where the point stays: return = 300 - n + 1
    assert [300 - r + 1 for r in result["returns"]] == result["steps_to_goal"]
    assert result["mean_steps_to_goal"] == pytest.approx(np.mean(result["steps_to_goal"]))
    trace = result["trace"]
    assert [p.shape for p in trace.paths] == [(301, 2)] * 2 and trace.successes.all()
    for path, goal in zip(trace.paths, trace.goals):
        assert np.linalg.norm(path[-1] - goal) <= 0.45 < np.linalg.norm(path[0] - goal)
    picture = draw_trace(trace, "test")
    assert picture.png.startswith(b"\x89PNG") and picture.rgb.ndim == 3
    assert "trace" not in evaluate(RandomPolicy(1, 0), "Pendulum-v1", 1, seed=0, trace=True)
    assert "turned_over_rate" not in result and trace.turned_over_at is None  # no ant


def test_a_large_evaluation_runs_in_chunks_with_the_same_episodes(monkeypatch):
    import contrl.evaluate as E
    policy = Steer(WaypointPlanner(MazeGeometry.of_env(make_env("PointMaze_UMaze-v3"))))
    whole = evaluate(policy, "PointMaze_UMaze-v3", 3, seed=0, trace=True)
    monkeypatch.setattr(E, "EVAL_CHUNK", 2)  # episodes 0-1, then 2: each seeded as before
    seen = []
    chunked = evaluate(policy, "PointMaze_UMaze-v3", 3, seed=0, trace=True,
                       on_chunk=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 3), (3, 3)]
    for key in ("returns", "successes", "steps_to_goal", "success_interval", "mean_length"):
        assert chunked[key] == whole[key]
    a, b = chunked.pop("trace"), whole.pop("trace")
    assert len(a.paths) == 3 and all(np.array_equal(p, q) for p, q in zip(a.paths, b.paths))
    np.testing.assert_array_equal(a.goals, b.goals)


def test_turned_over_detects_an_ant_on_its_back():
    env = make_env("AntMaze_UMaze-v5")
    env.reset(seed=0)
    assert not turned_over(env)
    env.unwrapped.data.qpos[3:7] = [0.0, 1.0, 0.0, 0.0]  # rotated 180 degrees about x
    assert turned_over(env)
    point = make_env("PointMaze_UMaze-v3")
    point.reset(seed=0)
    assert not turned_over(point)


def test_maze_evaluation_reports_when_the_ant_turned_over(monkeypatch):
    import contrl.evaluate as ev

    env = make_env("AntMaze_UMaze-v5")
    env.reset(seed=0)
    env.step(np.zeros(8))
    dt = env.unwrapped.data.time  # one env step of simulated time
    # as if every ant fell on its back when the clock passes 10 steps
    monkeypatch.setattr(ev, "turned_over", lambda env: env.unwrapped.data.time >= 10 * dt - 1e-9)
    result = evaluate(RandomPolicy(8, 0), "AntMaze_UMaze-v5", 2, seed=0, trace=True)
    assert result["turned_over_rate"] == 1.0
    assert result["turned_over_failures"] == (1.0 if result["success_rate"] < 1 else None)
    assert list(result["trace"].turned_over_at) == [10, 10]
    picture = draw_trace(result["trace"], "test")
    assert picture.png.startswith(b"\x89PNG")
