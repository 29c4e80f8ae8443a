"""Saved runs: reading a run's configuration refuses what is not one, with one line."""
import json
import shutil

import pytest

from contrl.errors import ContrlError
from contrl.run import read_run_config
from contrl.rundir import run_configs


@pytest.mark.parametrize("content,msg", [
    (None, "not a contrl run directory"),
    ("{not json", "is not valid JSON"),
    ('{"algo": "sac", "run": {}}', "missing or malformed: algo_config"),
    ('{"algo": "sac", "run": [], "algo_config": {}}', "not a contrl run configuration"),
    ("[1, 2]", "not a contrl run configuration"),
    ('{"algo": ["sac"], "run": {"env": "Pendulum-v1"}, "algo_config": {}}', "must be names"),
    ('{"algo": "sac", "run": {}, "algo_config": {}}', "must be names"),  # was read as Pendulum
])
def test_bad_run_configs_are_refused(tmp_path, content, msg):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ContrlError, match=msg):
        read_run_config(tmp_path)


def test_configs_saved_before_the_seeding_split_still_load(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "algo": "sac", "run": {"env": "Pendulum-v1"},
        "algo_config": {"lr": 1e-3, "seed_from": "", "bc_weight": 0.0, "seed_log_std": None}}))
    run_cfg, algo_cfg = run_configs(tmp_path)
    assert run_cfg.env == "Pendulum-v1" and algo_cfg.lr == 1e-3


@pytest.mark.parametrize("run,algo,msg", [
    ({"num_envs": 0}, {}, "num_envs must be positive, got 0"),
    ({}, {"hidden": [0, 256]}, "hidden must be positive layer widths"),
    ({}, {"lr": "x"}, "lr: cannot read 'x' as float"),
])
def test_a_hand_edited_config_is_named_before_it_is_used(tmp_path, run, algo, msg):
    # eval/collect/video read configs through run_configs; without this check hidden=[0, 256]
    # ended in a ZeroDivisionError traceback from the network's initializer
    (tmp_path / "config.json").write_text(json.dumps({
        "algo": "sac", "run": {"env": "Pendulum-v1", **run}, "algo_config": algo}))
    with pytest.raises(ContrlError, match=f"config.json: {msg}"):
        run_configs(tmp_path)


def test_best_falls_back_to_latest_and_says_so(pendulum_expert, tmp_path):
    from contrl.rundir import load_agent
    run = tmp_path / "run"
    shutil.copytree(pendulum_expert, run, ignore=shutil.ignore_patterns("best.ckpt", "tb"))
    assert load_agent(pendulum_expert, "best")[3]["checkpoint"] == "best"
    assert load_agent(run, "best")[3]["checkpoint"] == "latest"  # was labelled "best"
    from contrl.cli import main
    assert main(["eval", str(run), "--episodes", "1"]) == 0
    assert json.loads((run / "eval-latest.json").read_text())["checkpoint"] == "latest"
    assert not (run / "eval-best.json").exists()


def test_a_run_seeded_by_an_older_sac_cannot_be_resumed_silently_unseeded(tmp_path):
    from contrl.train import train
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.json").write_text(json.dumps({
        "algo": "sac", "run": {"env": "Pendulum-v1"},
        "algo_config": {"dataset": "hopper-expert-v0", "seed_with_dataset": True,
                        "bc_weight": 1.0}}))
    with pytest.raises(ContrlError, match="seeding is now the seeded_sac algorithm"):
        train("sac", None, {}, resume=str(tmp_path))


def test_exported_policies_collect_like_the_run_and_leave_the_buffer(pendulum_expert, tmp_path,
                                                                     monkeypatch):
    import numpy as np

    from contrl.data.datasets import load_dataset
    from contrl.run import Checkpoint
    from contrl.rundir import collect_run, export_policies, load_agent
    from contrl.train import train

    out = export_policies(pendulum_expert, tmp_path / "policy")
    full = Checkpoint(f"{pendulum_expert}/checkpoints/latest.ckpt")
    light = Checkpoint(out / "checkpoints" / "latest.ckpt")
    assert full.arrays("buffer/") and not light.arrays("buffer/")  # the buffer stays behind
    assert light.meta == full.meta and (out / "config.json").exists()
    buffer_bytes = sum(a.nbytes for a in full.arrays("buffer/").values())
    size = (out / "checkpoints" / "latest.ckpt").stat().st_size
    assert size < full.path.stat().st_size - buffer_bytes
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    for run, name in ((pendulum_expert, "pendulum-run-v0"), (out, "pendulum-copy-v0")):
        collect_run(run, name, 400, num_envs=2, sample=True, seed=3, which="latest")
    np.testing.assert_array_equal(load_dataset("pendulum-run-v0").actions,
                                  load_dataset("pendulum-copy-v0").actions)
    assert load_agent(out, "best")[3] == load_agent(pendulum_expert, "best")[3]
    with pytest.raises(ContrlError, match="is an exported policy .no resumable state.: resume "
                       "the run it was exported from"):
        train("sac", "Pendulum-v1", {"steps": 20_000, "progress": False}, resume=str(out))
    with pytest.raises(ContrlError, match="no checkpoints/best.ckpt"):
        export_policies(tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(ContrlError, match=r"holds a run \(the one exported\): an export there "
                       "would replace its checkpoints"):
        export_policies(pendulum_expert, pendulum_expert)  # the run itself: nothing is lost
    assert export_policies(pendulum_expert, out) == out  # an export again over its copy
    only_best = export_policies(pendulum_expert, tmp_path / "best_only", which=("best",))
    assert sorted(p.name for p in (only_best / "checkpoints").iterdir()) == ["best.ckpt"]


def _episode(policy, seed):
    env = policy.make_env()
    obs, _ = env.reset(seed=seed)
    policy.reset()
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, _ = env.step(policy.act(obs))
        total, done = total + r, term or trunc
    env.close()
    return total


def test_a_runs_policy_acts_in_your_own_loop_as_contrl_eval_does(pendulum_expert, tmp_path):
    import shutil

    from contrl.cli import main
    from contrl.config import ConfigError
    from contrl.rundir import held_out_episodes, load_policy
    policy = load_policy(pendulum_expert)
    result = policy.evaluate(2, seed=7)
    first = held_out_episodes(policy.run_cfg, 2, 7)[1]
    assert result["returns"] == pytest.approx([_episode(policy, first),
                                               _episode(policy, first + 1)], abs=1e-6)
    run = shutil.copytree(pendulum_expert, tmp_path / "run")  # contrl eval writes into it
    assert main(["eval", str(run), "--episodes", "2", "--seed", "7"]) == 0
    assert json.loads((run / "eval-best.json").read_text())["returns"] == result["returns"]
    action = policy.act(policy.make_env().reset(seed=0)[0])
    action += 0.1  # the caller's own array
    for bad, msg in [([[0.0, 1.0, 0.0]] * 2, "takes observations of shape \\(3,\\) .* got an "
                                              "array of shape \\(2, 3\\)"),
                     ("abc", "got something that is not an array of numbers"),
                     ({"observation": [0.0]}, "takes the flat observation of its make_env")]:
        with pytest.raises(ContrlError, match=msg):
            policy.act(bad)
    with pytest.raises(ConfigError, match="episodes must be positive, got 0"):
        policy.evaluate(0)
    with pytest.raises(ContrlError, match="the checkpoint is best or latest, not 'last'"):
        load_policy(pendulum_expert, "last")


def test_a_recurrent_runs_policy_remembers_until_reset(tmp_path):
    import numpy as np

    from contrl.rundir import held_out_episodes, load_policy
    from contrl.train import train
    out = train("rsac", "Pendulum-P-v1", dict(
        steps=260, learning_starts=200, seq_len=8, burn_in=2, rnn_hidden=8, batch_size=8,
        hidden=(16, 16), eval_every=260, eval_episodes=1, runs_dir=str(tmp_path),
        progress=False, tensorboard=False, prev_action=True))
    policy = load_policy(out["run_dir"])
    env = policy.make_env()
    assert env.observation_space.shape == (3,)  # the angle's cos and sin, the previous action
    obs, _ = env.reset(seed=0)
    first = policy.act(obs)
    again = policy.act(obs)  # the same observation, with one step of memory
    policy.reset()
    assert np.array_equal(policy.act(obs), first) and np.abs(again - first).max() > 1e-4
    start = held_out_episodes(policy.run_cfg)[1]  # no seed: the run's held-out episodes
    assert policy.evaluate(1)["returns"] == pytest.approx([_episode(policy, start)], abs=1e-6)
    # two envs in one batch; then only the first starts a new episode
    policy.reset(2)
    both = np.stack([obs, obs])
    np.testing.assert_allclose(policy.act(both), [first, first], atol=1e-6)  # other kernels
    step2 = policy.act(both)
    policy.reset(2, done=[True, False])
    step3 = policy.act(both)
    np.testing.assert_allclose(step3[0], first, atol=1e-6)
    assert np.abs(step3[1] - step2[1]).max() > 1e-4  # the second env remembers two steps
    with pytest.raises(ContrlError, match="done needs one bool per env \\(2\\)"):
        policy.reset(2, done=[True])
    with pytest.raises(ContrlError, match="takes observations of shape \\(2, 3\\)"):
        policy.act(obs)
    # actions drawn from the policy's distribution, seeded
    draws = [load_policy(out["run_dir"], sample=True, seed=s) for s in (1, 1, 2)]
    a, b, c = (p.act(obs) for p in draws)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, first)
    env.close()
