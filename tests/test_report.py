"""contrl report: numbers against hand computations on fixed runs, figures, bad input."""
import csv
import json

import numpy as np
import pytest

from contrl.errors import ContrlError
from contrl.report import find_runs, group, normalize, load_references, report

RANDOM, EXPERT = -1249.0, -157.0  # Pendulum-v1 in contrl/references.toml


def _ret(score):  # the Pendulum return of a normalized score
    return RANDOM + score * (EXPERT - RANDOM)


def make_run(root, algo, seed, evals, steps=1000, seconds=0.0, **config):
    d = root / f"{algo}-s{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({
        "algo": algo, "run": {"env": "Pendulum-v1", "seed": seed, "steps": steps, "progress": False},
        "algo_config": {"lr": 3e-4, **config}}))
    with (d / "progress.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "time", "episode_return", "eval_return"])
        for i, r in enumerate(evals):
            w.writerow([(i + 1) * 100 - 50, 0.0, -1000.0, ""])  # a training row
            w.writerow([(i + 1) * 100, seconds * (i + 1), "", r])  # the clock at each evaluation
    return d


@pytest.fixture
def runs(tmp_path):
    # sac's final normalized scores 0, 0.25, 0.5, 1.0; td3's all 0.5
    for seed, score in enumerate([0.0, 0.25, 0.5, 1.0]):
        make_run(tmp_path, "sac", seed, [_ret(0.1), _ret(score + 0.2) if score < 1 else _ret(1.0),
                                         _ret(score)])
        make_run(tmp_path, "td3", seed, [_ret(0.0), _ret(0.5), _ret(0.5)])
    return tmp_path


def test_wall_time_is_the_median_clock_at_the_last_evaluation(tmp_path):
    for seed, seconds in enumerate([10.0, 50.0, 20.0]):  # last evaluations at 30, 150, 60 s
        make_run(tmp_path / "a", "sac", seed, [_ret(0.1), _ret(0.2), _ret(0.3)], seconds=seconds)
    out = report([str(tmp_path / "a")], reps=50, seed=0, figures=False)
    assert out["per_task"][0]["wall_time"] == pytest.approx(60.0)
    assert "| 60 s |" in (tmp_path / "a" / "report.md").read_text()


def test_report_numbers_equal_hand_computations(runs):
    out = report([str(runs)], reps=100, seed=0, figures=False)
    rows = {r["algo"]: r for r in out["per_task"]}
    finals = [_ret(s) for s in (0.0, 0.25, 0.5, 1.0)]
    assert rows["sac"]["final_per_seed"] == pytest.approx(finals)
    assert rows["sac"]["final"][0] == pytest.approx(np.mean(finals))
    best = [_ret(0.2), _ret(0.45), _ret(0.7), _ret(1.0)]  # each run's best evaluation
    assert rows["sac"]["best"][0] == pytest.approx(np.mean(best))
    lo, hi = rows["sac"]["final"][1:]
    assert min(finals) <= lo <= np.mean(finals) <= hi <= max(finals)
    assert rows["td3"]["final"] == pytest.approx([_ret(0.5)] * 3)  # no spread: a point interval
    assert rows["sac"]["published"][0]["value"] == -157.0

    agg = out["aggregates"]
    # IQM of (0, .25, .5, 1): the middle two, 0.375; mean 0.4375; median (rliable's: the
    # median over envs of each env's mean over runs; one env here) 0.4375;
    # optimality gap: mean of max(1 - x, 0) = (1 + .75 + .5 + 0) / 4 = 0.5625
    assert agg["sac"]["IQM"][0] == pytest.approx(0.375)
    assert agg["sac"]["mean"][0] == pytest.approx(0.4375)
    assert agg["sac"]["median"][0] == pytest.approx(0.4375)
    assert agg["sac"]["optimality gap"][0] == pytest.approx(0.5625)
    assert agg["td3"]["IQM"] == pytest.approx([0.5, 0.5, 0.5])
    # P(sac > td3): pairs (x, 0.5) over sac's scores count 0, 0, 1/2 (a tie), 1 -> 0.375
    assert out["probability_of_improvement"]["sac > td3"][0] == pytest.approx(0.375)
    assert out["probability_of_improvement"]["td3 > sac"][0] == pytest.approx(0.625)
    # the curve: IQM over seeds at each evaluation step
    curve = out["curves"]["Pendulum-v1|sac"]
    assert curve["steps"] == [100, 200, 300]
    assert curve["iqm"][2] == pytest.approx(np.mean([_ret(0.25), _ret(0.5)]))  # middle two
    assert curve["iqm"][0] == pytest.approx(_ret(0.1))
    md = (runs / "report.md").read_text()
    assert "| Pendulum-v1 | sac | 4 | 300 |" in md and "0.375" in md


def test_settings_that_differ_are_reported_apart(tmp_path):
    make_run(tmp_path / "a", "sac", 0, [-300.0], lr=1e-3)
    make_run(tmp_path / "b", "sac", 0, [-200.0], lr=3e-4)
    make_run(tmp_path / "b", "sac", 1, [-250.0], lr=3e-4)
    groups = group(find_runs([str(tmp_path)]))
    assert sorted(groups) == [("Pendulum-v1", "sac[lr=0.0003]"), ("Pendulum-v1", "sac[lr=0.001]")]
    assert [r.seed for r in groups[("Pendulum-v1", "sac[lr=0.0003]")]] == [0, 1]


def test_report_writes_figures(runs):
    out = report([str(runs)], reps=100, out=str(runs / "rep"))
    assert set(out["figures"]) == {"curves_Pendulum-v1.png", "aggregates.png", "profiles.png"}
    for f in out["figures"]:
        assert (runs / "rep" / f).read_bytes()[:4] == b"\x89PNG"


def test_up_to_compares_runs_at_equal_steps(runs):
    # evaluations at steps 100, 200, 300: up to 250 the final is each run's second evaluation
    out = report([str(runs)], reps=100, seed=0, figures=False, step=250)
    rows = {r["algo"]: r for r in out["per_task"]}
    second = [_ret(0.2), _ret(0.45), _ret(0.7), _ret(1.0)]
    assert rows["sac"]["final_per_seed"] == pytest.approx(second)
    assert rows["td3"]["final_per_seed"] == pytest.approx([_ret(0.5)] * 4)
    # all runs reached step 250's cut (the one note: 4 seeds are few)
    assert out["up_to_step"] == 250 and [n[:18] for n in out["notes"]] == ["fewer than 5 seeds"]
    assert "up to env step 250 only" in (runs / "report.md").read_text()
    with pytest.raises(ContrlError, match="no evaluated runs .* at or before step 50"):
        report([str(runs)], figures=False, step=50)
    with pytest.raises(ContrlError, match="positive step"):
        report([str(runs)], figures=False, step=0)


def test_normalization_table():
    refs = load_references()
    assert float(normalize(-157.0, "Pendulum-v1", refs)) == pytest.approx(1.0)
    assert float(normalize(-1249.0, "Pendulum-v1", refs)) == pytest.approx(0.0)
    assert normalize(1.0, "NoSuchEnv-v0", refs) is None


def test_a_report_replaces_its_own_files_only(runs):
    out = runs / "rep2"
    report([str(runs)], reps=100, out=str(out), figures=False)
    report([str(runs)], reps=100, out=str(out), figures=False)  # its own: replaced
    mine = runs / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my notes")
    with pytest.raises(ContrlError, match="is not from a contrl report: give --out"):
        report([str(runs)], reps=100, out=str(mine), figures=False)
    assert (mine / "report.md").read_text() == "my notes"


def test_no_runs_is_an_error(tmp_path):
    with pytest.raises(ContrlError, match="no evaluated runs"):
        report([str(tmp_path)])
    with pytest.raises(ContrlError, match="is not a directory"):
        report([str(tmp_path / "missing")])


def test_a_copied_run_is_not_a_second_seed(tmp_path):
    import shutil
    d = make_run(tmp_path / "a", "sac", 1, [_ret(0.5)])
    shutil.copytree(d, tmp_path / "b" / d.name)
    with pytest.raises(ContrlError, match="are both seed 1 of sac on Pendulum-v1"):
        report([str(tmp_path)], out=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # --out is made only once the runs are read


def test_bad_steps_reps_and_nan_evaluations(tmp_path):
    d = make_run(tmp_path / "a", "sac", 0, [_ret(0.5), float("nan")])
    with pytest.raises(ContrlError, match="at most 100000"):
        report([str(tmp_path)], reps=10**12)
    with pytest.raises(ContrlError, match="every run's last evaluation is not a finite number"):
        report([str(tmp_path)], figures=False, reps=100)
    # a diverged run is left out, by name; one that recovered keeps its finite best
    make_run(tmp_path / "b", "sac", 1, [_ret(0.2), float("nan"), _ret(0.6)])
    make_run(tmp_path / "b", "sac", 2, [_ret(0.4), _ret(0.5), _ret(0.5)])
    result = report([str(tmp_path)], figures=False, reps=100, pick="best")
    row = result["per_task"][0]
    assert row["seeds"] == [1, 2] and row["best"][0] == pytest.approx(_ret(0.55))
    assert result["aggregates"]["sac"]["mean"][0] == pytest.approx(0.55)
    assert any("1 run(s) left out: their last evaluation is not a finite number" in n
               and str(d) in n for n in result["notes"])
    assert any("non-finite evaluations before their last" in n and "sac-s1" in n
               for n in result["notes"])
    assert "NaN" not in (tmp_path / "report.json").read_text()  # the curve's gap: null
    saved = json.loads((d / "config.json").read_text())
    saved["run"]["steps"] = None
    (d / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ContrlError, match="steps must be a positive integer, got None"):
        report([str(tmp_path)])


def make_maze_run(root, algo, seed, rates, dataset="antmaze-umaze-v0",
                  env="AntMaze_UMaze_Fixed-v5"):
    d = root / f"{algo}-maze-s{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({
        "algo": algo, "run": {"env": env, "seed": seed, "steps": 200},
        "algo_config": {"dataset": dataset}}))
    with (d / "progress.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "eval_return", "eval_success_rate"])
        for i, r in enumerate(rates):
            w.writerow([(i + 1) * 100, -700.0 * (1 - r), r])
    return d


def test_success_rates_are_reported_with_the_published_ones(tmp_path):
    for seed, rates in enumerate([[0.2, 0.5], [0.4, 0.3], [0.1, 0.7]]):
        make_maze_run(tmp_path, "iql", seed, rates)
    out = report([str(tmp_path)], reps=100, seed=0, out=str(tmp_path / "rep"))
    success = out["per_task"][0]["success"]
    assert success["final_per_seed"] == [0.5, 0.3, 0.7]
    assert success["final"][0] == pytest.approx(0.5)  # (0.5 + 0.3 + 0.7) / 3
    assert success["best"][0] == pytest.approx((0.5 + 0.4 + 0.7) / 3)
    assert 0.3 <= success["final"][1] <= 0.5 <= success["final"][2] <= 0.7
    # published success rates for IQL on antmaze-umaze (CORL and the IQL paper), none in return
    assert sorted(p["value"] for p in success["published"]) == [0.77, 0.875]
    assert out["per_task"][0]["published"] == []
    # IQM of 3 runs trims nothing (a quarter of 3 rounds down to 0): the mean at each step
    assert out["success_curves"]["AntMaze_UMaze_Fixed-v5|iql"]["iqm"] == pytest.approx([0.7 / 3, 0.5])
    assert "success_AntMaze_UMaze_Fixed-v5.png" in out["figures"]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| AntMaze_UMaze_Fixed-v5 | iql | antmaze-umaze-v0 | 3 | 200 | 0.500 [" in md


def test_published_success_rates_follow_the_dataset(tmp_path):
    make_maze_run(tmp_path, "iql", 0, [0.5], dataset="antmaze-umaze-multigoal-v0")
    out = report([str(tmp_path)], reps=100, seed=0, figures=False)
    assert out["per_task"][0]["success"]["published"] == []
    # the maze and dataset with D4RL's ant stand for the same task: the same published figures
    make_maze_run(tmp_path / "d4rl", "iql", 0, [0.5], dataset="antmaze-umaze-v1",
                  env="AntMaze_UMaze_D4RL-v5")
    out = report([str(tmp_path / "d4rl")], reps=100, seed=0, figures=False)
    assert sorted(p["value"] for p in out["per_task"][0]["success"]["published"]) == [0.77, 0.875]


def test_published_figures_are_drawn_once_for_several_settings_of_one_algo(tmp_path, monkeypatch):
    import contrl.report as R
    make_run(tmp_path / "a", "sac", 0, [-300.0, -250.0], lr=1e-3)
    make_run(tmp_path / "b", "sac", 0, [-200.0, -150.0], lr=3e-4)
    groups = group(find_runs([str(tmp_path)]))
    curves = {k: (np.array([100, 200]), np.array([-300.0, -250.0]), np.array([-310.0, -260.0]),
                  np.array([-290.0, -240.0])) for k in groups}
    refs = {"published": [{"env": "Pendulum-v1", "algo": "sac", "source": "X", "steps": 200,
                           "value": -180.0}]}
    texts = []
    monkeypatch.setattr(R, "_save", lambda fig, path: texts.extend(
        t.get_text() for ax in fig.axes for t in ax.texts))
    R.plot_curves(curves, refs, tmp_path, groups)
    assert texts == ["sac X @0k"]  # one line for both settings, named by the algorithm


def test_one_seed_has_no_interval_and_few_seeds_are_noted(tmp_path):
    make_run(tmp_path / "a", "sac", 0, [_ret(0.2), _ret(0.4)])
    for seed, score in enumerate([0.1, 0.3, 0.8]):
        make_run(tmp_path / "b", "td3", seed, [_ret(0.2), _ret(score)])
    out = report([str(tmp_path)], reps=50, seed=0, figures=False)
    rows = {r["algo"]: r for r in out["per_task"]}
    assert rows["sac"]["final"] == [pytest.approx(_ret(0.4)), None, None]  # not [x, x, x]
    md = (tmp_path / "report.md").read_text()
    assert f"{_ret(0.4):.1f} (1 seed)" in md
    assert any("fewer than 5 seeds: Pendulum-v1 td3 (3)" in n for n in out["notes"])
    assert not any("sac" in n for n in out["notes"] if "fewer than" in n)
    assert any(n.startswith("one seed: Pendulum-v1 sac;") for n in out["notes"])
    # one run per env and algorithm: aggregates and P(X > Y) without intervals, figure drawn
    one = report([str(tmp_path / "a"), str(tmp_path / "b" / "td3-s0")], out=str(tmp_path / "r1"),
                 reps=50, seed=0)
    assert one["aggregates"]["sac"]["mean"] == [pytest.approx(0.4), None, None]
    assert one["probability_of_improvement"]["sac > td3"] == [1.0, None, None]
    assert "aggregates.png" in one["figures"]


def test_runs_left_out_or_stopped_early_are_named(tmp_path):
    """A run without evaluations yet, a progress row cut mid-write, a run stopped by its
    stop_at_return, a run with another video_every (not another setting)."""
    make_run(tmp_path, "sac", 0, [_ret(0.2), _ret(0.4)])
    late = make_run(tmp_path, "sac", 1, [])
    cut = make_run(tmp_path, "sac", 2, [_ret(0.2), _ret(0.4)], video_every=5000)
    with (cut / "progress.csv").open("a") as f:
        f.write("300,0.0,,-1")  # -1030.6 being written: not a return of -1
    stop = make_run(tmp_path, "sac", 3, [_ret(0.2), _ret(0.9)], steps=1000)
    saved = json.loads((stop / "config.json").read_text())
    saved["run"]["stop_at_return"] = _ret(0.8)
    (stop / "config.json").write_text(json.dumps(saved))
    out = report([str(tmp_path)], reps=50, seed=0)
    rows = {r["algo"]: r for r in out["per_task"]}  # a stopping rule is a setting of its own
    assert rows["sac[stop_at_return=None]"]["seeds"] == [0, 2]
    assert rows["sac[stop_at_return=None]"]["final_per_seed"] == pytest.approx([_ret(0.4)] * 2)
    notes = " | ".join(out["notes"])
    assert f"1 run(s) left out: no evaluation yet: {late}" in notes
    assert f"stopped early on reaching their stop_at_return: {stop}" in notes
    assert str(stop) not in notes.split("have not reached their steps yet")[-1].split(" | ")[0]
    one = report([str(tmp_path / "sac-s0")], out=str(tmp_path / "one"), reps=50, seed=0)
    curve = one["curves"]["Pendulum-v1|sac"]  # one seed: its curve, no band of width 0
    assert curve["iqm"] == pytest.approx([_ret(0.2), _ret(0.4)]) and curve["low"] is None
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "success_Pendulum-v1.png").write_bytes(b"a user's figure")
    with pytest.raises(ContrlError, match="success_Pendulum-v1.png exists and is not from a"):
        report([str(tmp_path / "sac-s0")], out=str(mine), reps=50)


def test_curves_name_what_a_step_counts():
    from contrl.report import step_label
    assert step_label({"offpolicy", "onpolicy"}) == "env steps"
    assert step_label({"offline", "mopo"}) == "gradient steps"
    assert step_label({"dagger"}) == "expert labels"
    assert step_label({"offline", "offpolicy"}) == "steps (env steps, gradient steps)"
    assert step_label(set()) == "env steps"
