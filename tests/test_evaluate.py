"""Evaluation: deterministic episodes, the policy's carry, success rates with intervals."""
import pytest

from contrl.evaluate import evaluate, wilson_interval
from contrl.policy import RandomPolicy


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
