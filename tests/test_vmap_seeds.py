"""Seeds trained together as one vmapped agent: each seed as its single run would train it (up
to float reordering), exact resume of the group (through the sweep), the sweep's jobs."""
import csv

import jax
import numpy as np
import pytest

from contrl.cli import main
from contrl.run import save_checkpoint
from contrl.rundir import load_agent
from contrl.sweep import Trial, last_step, plan_jobs, sweep
from contrl.train import train

# the suite's tiny SAC (tests/conftest.py); 500 steps end mid-episode (Pendulum: 200)
TINY = dict(learning_starts=200, hidden=(32, 32), batch_size=32, buffer_size=5000,
            eval_every=250, eval_episodes=1, log_every=50, checkpoint_every=10_000,
            update_every=4, tensorboard=False)


def _flags(values: dict) -> list[str]:
    out = []
    for k, v in values.items():
        flag = "--" + k.replace("_", "-")
        out += ([flag if v else "--no-" + flag[2:]] if isinstance(v, bool)
                else [flag, *map(str, v if isinstance(v, tuple) else (v,))])
    return out


def _leaves(run_dir):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(load_agent(run_dir, "latest")[0])]


def _rows(run_dir, drop=("time", "steps_per_sec")):
    with open(run_dir / "progress.csv") as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    """Seeds 0 and 1 trained 500 steps together, through the command line."""
    root = tmp_path_factory.mktemp("group")
    argv = ["train", "sac", "Pendulum-v1", "--seeds", "0-1", "--steps", "500", "--run-dir",
            str(root / "sac-Pendulum-v1-s{seed}"), "--no-progress", *_flags(TINY)]
    assert main(argv) == 0
    return [root / f"sac-Pendulum-v1-s{s}" for s in (0, 1)]


def test_a_vmapped_seed_trains_as_its_single_run(group, tmp_path):
    alone = train("sac", "Pendulum-v1", dict(TINY, steps=500, seed=1, progress=False),
                  run_dir=str(tmp_path / "alone"))
    single, together, other = (_leaves(tmp_path / "alone"), _leaves(group[1]), _leaves(group[0]))

    def distance(a, b):  # relative, over the float leaves: parameters, optimizer states
        pairs = [(x, y) for x, y in zip(a, b) if np.issubdtype(x.dtype, np.floating)]
        num = sum(float(np.sum((x.astype(float) - y.astype(float)) ** 2)) for x, y in pairs)
        return np.sqrt(num / sum(float(np.sum(x.astype(float) ** 2)) for x, _ in pairs))

    for x, y in zip(single, together):  # keys and counters: exactly the single run's
        if not np.issubdtype(x.dtype, np.floating):
            np.testing.assert_array_equal(x, y)

    # one update call differs by float reordering (~1e-8) and RL amplifies it a little; the
    # other seed of the group is a different run altogether
    assert distance(single, together) < 2e-3 < 0.1 < distance(single, other)
    rows_alone, rows_group = _rows(tmp_path / "alone"), _rows(group[1])
    assert [r["step"] for r in rows_alone] == [r["step"] for r in rows_group]
    assert [r["episodes"] for r in rows_alone] == [r["episodes"] for r in rows_group]
    np.testing.assert_allclose(float(rows_alone[-1]["eval_return"]),
                               float(rows_group[-1]["eval_return"]), rtol=1e-2)
    assert alone["eval"] is not None and (group[1] / "eval.json").exists()
    assert (group[1] / "checkpoints" / "best.ckpt").exists()


def test_sweep_resumes_a_vmapped_group_exactly(group, tmp_path, monkeypatch):
    """A vmapped sweep stopped at 250 steps (mid-episode) and extended to 500 gives the group
    trained 500 steps straight, parameter for parameter and row for row."""
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", jax.config.jax_compilation_cache_dir)
    sets = [f"{k}={':'.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in TINY.items()]
    first = sweep(["sac"], ["Pendulum-v1"], "0-1", [*sets, "steps=250"], str(tmp_path / "sw"),
                  show=False, vmap_seeds=True)
    assert first["finished"] == ["sac-Pendulum-v1-s0", "sac-Pendulum-v1-s1"]
    log = tmp_path / "sw" / "logs" / "sac-Pendulum-v1-s0_1.log"
    assert set(first["logs"].values()) == {str(log)} and "--seeds 0,1" in log.read_text()
    second = sweep(["sac"], ["Pendulum-v1"], "0-1", [*sets, "steps=500"], str(tmp_path / "sw"),
                   show=False, vmap_seeds=True)
    assert second["finished"] == first["finished"] and second["failed"] == {}
    assert "--resume" in log.read_text()
    for straight, name in zip(group, first["finished"]):
        resumed = tmp_path / "sw" / name
        assert last_step(resumed) == 500
        for x, y in zip(_leaves(straight), _leaves(resumed)):
            np.testing.assert_array_equal(x, y)
        assert _rows(straight) == _rows(resumed)


def test_plan_jobs_groups_seeds_that_start_alike(tmp_path):
    trials = [Trial("sac", "Pendulum-v1", s, (), f"sac-Pendulum-v1-s{s}", 100) for s in range(5)]
    for s, step in ((2, 40), (3, 40), (4, 60)):  # 0, 1: new; 2, 3: at step 40; 4: at 60
        run = tmp_path / trials[s].name
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.json").write_text("{}")
        save_checkpoint(run / "checkpoints" / "latest.ckpt", {"w": np.zeros(1)}, {"step": step})
    jobs = plan_jobs(tmp_path, trials, {"sac-Pendulum-v1"})
    assert [([t.seed for t in j.trials], j.resume) for j in jobs] == \
        [([0, 1], False), ([2, 3], True), ([4], True)]
    assert jobs[0].train_args(tmp_path)[:8] == [
        "train", "sac", "Pendulum-v1", "--seeds", "0,1", "--run-dir",
        str(tmp_path / "sac-Pendulum-v1-s{seed}"), "--no-progress"]
    assert jobs[1].train_args(tmp_path) == [
        "train", "sac", "--resume", str(tmp_path / trials[2].name), str(tmp_path / trials[3].name),
        "--no-progress", "--steps", "100"]
    assert jobs[2].train_args(tmp_path)[:4] == ["train", "sac", "--resume", str(tmp_path / trials[4].name)]
    assert [len(j.trials) for j in plan_jobs(tmp_path, trials, set())] == [1] * 5
