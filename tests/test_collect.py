"""Dataset collection: policies rolled out into episodes, stateful policies, replay-buffer
export and concatenation."""
import shutil

import numpy as np
import pytest

from contrl.data.collect import _marked_episodes, concat, rollout_episodes
from contrl.data.datasets import dataset_metadata, load_dataset
from contrl.envs.antgoal import MAZE_OBS_KEYS
from contrl.errors import ContrlError
from contrl.rundir import collect_run, export_run_buffer


class CountingPolicy:
    """Acts with the number of steps since its env's episode began (a carried counter)."""

    def initial_carry(self, num_envs):
        return np.zeros(num_envs, np.int64)

    def eval_actions(self, obs, carry):
        return np.tanh(carry / 100.0)[:, None].astype(np.float32), carry + 1


def test_rollout_carries_the_policy_state_and_resets_it_per_episode():
    eps = rollout_episodes(CountingPolicy(), "Pendulum-v1", 500, seed=0, num_envs=2)
    for ep in eps:  # every episode starts its counter at 0, whatever the other env did
        n = len(ep["actions"])
        np.testing.assert_allclose(np.asarray(ep["actions"])[:, 0], np.tanh(np.arange(n) / 100.0),
                                   rtol=1e-6)


def test_rollout_reports_its_progress_every_thousand_transitions():
    seen = []
    eps = rollout_episodes(CountingPolicy(), "Pendulum-v1", 2500, seed=0, num_envs=2,
                           on_progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1000, 2500), (2000, 2500)] and sum(len(e["rewards"]) for e in eps) == 2500


def test_collect_refuses_bad_noise_and_names(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(ContrlError, match="noise must be a number >= 0"):
        collect_run(None, "pendulum-bad-v0", 100, noise=-1.0, env_id="Pendulum-v1")
    with pytest.raises(ContrlError, match="must look like"):
        collect_run(None, "..-v0", 100, env_id="Pendulum-v1")
    with pytest.raises(ContrlError, match="needs --env"):
        collect_run(None, "pendulum-rand-v0", 100)
    assert not list(tmp_path.iterdir())


def test_random_dataset_records_its_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    out = collect_run(None, "pendulum-random-v0", 400, env_id="Pendulum-v1", num_envs=2)
    data = load_dataset("pendulum-random-v0")
    assert out["steps"] == len(data) == 400 and out["ref_max_score"] is None
    assert out["episodes"] == out["complete_episodes"] == 2  # 200 steps each: Pendulum's limit
    assert data.metadata["policy"] == "uniform random"
    assert np.abs(data.actions).max() <= 1.0


def test_a_collection_without_a_whole_episode_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    out = collect_run(None, "pendulum-short-v0", 400, env_id="Pendulum-v1", num_envs=4)
    assert out["episodes"] == 4 and out["complete_episodes"] == 0
    assert out["average_return"] is None
    assert ("no episode of pendulum-short-v0 ended within its 400 steps (each of the 4 envs "
            "stepped in lockstep ran about 100)") in capsys.readouterr().err


def test_a_policy_no_better_than_random_gives_no_reference_scores(tmp_path, monkeypatch, capsys):
    import contrl.data.collect as collect_mod
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    returns = iter([-1000.0, -2000.0])  # the random policy's, then the policy's
    monkeypatch.setattr(collect_mod, "evaluate", lambda *a, **k: {"mean_return": next(returns)})
    out = collect_mod.collect(CountingPolicy(), "Pendulum-v1", "pendulum-poor-v0", 200)
    assert out["ref_min_score"] == -1000.0 and out["ref_max_score"] is None
    assert "policy's return (-2000.0) is not above a random policy's (-1000.0)" in \
        capsys.readouterr().err


def test_replay_buffer_export_and_concat(pendulum_expert, pendulum_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    out = export_run_buffer(pendulum_expert, "pendulum-replay-v0")
    replay = load_dataset("pendulum-replay-v0")
    assert out["steps"] == len(replay) == 10_000  # the expert run's whole buffer
    assert replay.timeouts.sum() == 50 and not replay.terminals.any()  # 200-step episodes
    assert replay.metadata["checkpoint_step"] == 10_000
    # consecutive rows of an episode chain: next observation = following observation
    inner = ~replay.episode_ends[:-1]
    np.testing.assert_array_equal(replay.next_observations[:-1][inner], replay.observations[1:][inner])
    shutil.copytree(pendulum_dataset, tmp_path / "minari" / "pendulum-noisy-v0")
    both = concat(["pendulum-replay-v0", "pendulum-noisy-v0"], "pendulum-mixed-v0")
    mixed = load_dataset("pendulum-mixed-v0")
    assert both["steps"] == len(mixed) == 30_000
    np.testing.assert_array_equal(mixed.observations[:10_000], replay.observations)
    assert mixed.ref_min_score == replay.ref_min_score


def test_concat_keeps_the_average_of_complete_episodes(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    # 2 envs x 250 steps of 200-step Pendulum episodes: 2 complete, 2 cut at 50 by the budget
    src = collect_run(None, "pend-rand-v0", 500, env_id="Pendulum-v1", num_envs=2, seed=1)
    assert dataset_metadata("pend-rand-v0")["contrl"]["cut_episodes"] != []
    out = concat(["pend-rand-v0"], "pend-again-v0")
    assert out["average_return"] == pytest.approx(src["average_return"])
    with pytest.raises(ContrlError, match=r"pend-rand-v0/ twice \(as given or as another"):
        concat(["pend-rand-v0", f"{tmp_path}/./pend-rand-v0/"],  # its id and its folder
               "pend-twice-v0")
    # a dataset made before contrl kept the record: the env's time limit tells
    ds = load_dataset("pend-rand-v0")
    ds.metadata.pop("cut_episodes")
    assert [bool(e.get("cut")) for e in _marked_episodes(ds)] == \
        [len(e["rewards"]) < 200 for e in ds.episodes()]
    # references of another env's dataset are refused
    collect_run(None, "ip-rand-v0", 100, env_id="InvertedPendulum-v5", num_envs=1)
    with pytest.raises(ContrlError, match="--ref-from ip-rand-v0: its reference scores are "
                       "InvertedPendulum-v5's, not Pendulum-v1's"):
        collect_run(None, "pend-refs-v0", 100, env_id="Pendulum-v1", ref_from="ip-rand-v0")


def test_concat_keeps_the_key_order_of_flat_goal_data(tmp_path, monkeypatch):
    """Flat goal data record the key order they were flattened in; a concatenation keeps it
    (it was lost: the result loaded in any order) and refuses sources flattened in two."""
    from contrl.data.datasets import DatasetError, write_minari
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    ep = {"observations": np.zeros((4, 31), np.float32), "actions": np.zeros((3, 8), np.float32),
          "rewards": np.zeros(3, np.float32), "terminations": np.zeros(3, bool),
          "truncations": np.array([False, False, True])}
    swapped = ["observation", "desired_goal", "achieved_goal"]
    for name, keys in (("a-v0", swapped), ("b-v0", swapped), ("c-v0", list(MAZE_OBS_KEYS))):
        write_minari(name, [ep], "AntMaze_UMaze-v5", {"obs_keys": keys})
    concat(["a-v0", "b-v0"], "ab-v0")
    assert dataset_metadata("ab-v0")["contrl"]["obs_keys"] == swapped
    with pytest.raises(DatasetError, match="ab-v0 stores its observations flat, keys in the "
                       "order observation, desired_goal, achieved_goal, not observation, "
                       "achieved_goal, desired_goal"):
        load_dataset("ab-v0", obs_keys=MAZE_OBS_KEYS)
    with pytest.raises(ContrlError, match="cannot concatenate datasets whose dict observations "
                       "were flattened in different key orders .a-v0: observation, desired_goal, "
                       "achieved_goal, c-v0: observation, achieved_goal, desired_goal."):
        concat(["a-v0", "c-v0"], "ac-v0")


def test_sampled_dataset_draws_from_the_policy_distribution(pendulum_expert, tmp_path, monkeypatch):
    from contrl.rundir import load_agent

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    for name in ("pendulum-sampled-v0", "pendulum-sampled-v1"):
        collect_run(pendulum_expert, name, 400, num_envs=2, sample=True, seed=3)
    data, again = load_dataset("pendulum-sampled-v0"), load_dataset("pendulum-sampled-v1")
    assert data.metadata["sampled"] is True and "sampled" in data.metadata["policy"]
    np.testing.assert_array_equal(data.actions, again.actions)  # seeded: the same draws
    assert np.abs(data.actions).max() <= 1.0
    agent = load_agent(pendulum_expert, "best")[0]
    mode = np.asarray(agent.eval_actions(data.observations)[0])
    gap = np.abs(data.actions - mode)
    # SAC's draws spread around its mode: not the mode itself, but near it on average
    assert gap.mean() > 1e-3 and gap.mean() < 0.5, gap.mean()


def test_sampling_needs_a_policy_with_a_distribution(pendulum_expert, tmp_path, monkeypatch):
    from contrl.agents.bc import BC, BCConfig
    from contrl.policy import SampledPolicy

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(ContrlError, match="no action distribution"):
        SampledPolicy(BC.create(BCConfig(), 3, 1, 0), 0)
    with pytest.raises(ContrlError, match="sampled actions need a run's policy and no --noise"):
        collect_run(pendulum_expert, "pendulum-both-v0", 100, noise=0.1, sample=True)
    with pytest.raises(ContrlError, match="sampled actions need a run's policy"):
        collect_run(None, "pendulum-rs-v0", 100, env_id="Pendulum-v1", sample=True)
    assert not list(tmp_path.iterdir())
