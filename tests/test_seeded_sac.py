"""Imitation-seeded SAC: its BC term by hand, its config checks, the seeded start."""
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.seeded_sac import SeededSAC, SeededSACConfig, actor_dims, bc_term, q_normalized
from contrl.config import ConfigError


def test_bc_term_is_zero_at_the_seeding_policy():
    m = jnp.asarray([[0.3, -0.2]])
    assert float(bc_term(m, m)) == 0.0
    assert float(bc_term(jnp.zeros((1, 2)), jnp.full((1, 2), 10.0))) == pytest.approx(
        2 * np.tanh(10.0) ** 2)


def test_q_normalized_actor_objective_by_hand():
    q = jnp.asarray([[2.0, -4.0], [3.0, -6.0]])  # min over critics: [2, -6], mean |.| = 4
    assert float(q_normalized(jnp.float32(8.0), q)) == pytest.approx(2.0, rel=1e-5)


def test_seeded_sac_needs_a_seeding_source_and_sac_no_longer_has_its_knobs(tmp_path):
    from contrl.agents.sac import SACConfig
    from contrl.train import build_configs
    with pytest.raises(ConfigError, match="needs a seeding policy"):
        build_configs("seeded_sac", "Pendulum-v1", {"runs_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match="unknown option 'bc_weight' for sac"):
        build_configs("sac", "Pendulum-v1", {"bc_weight": 1.0})
    # configs saved before the split still load (their seeding fields are dropped)
    from contrl import config as C
    assert C.build(SACConfig, {"lr": 1e-3, "seed_from": "", "seed_log_std": None}).lr == 1e-3


def test_actor_dims_read_from_parameters():
    agent = SeededSAC.create(SeededSACConfig(hidden=(8,), dataset="x"), 5, 2, 0)
    assert actor_dims(agent.actor.params) == (5, 2)


@pytest.mark.slow
def test_imitation_seeded_sac_starts_near_the_expert(pendulum_dataset, tmp_path):
    from contrl.data.datasets import load_dataset
    from contrl.rundir import load_agent
    from contrl.train import train
    # learning_starts = steps: no online update, so the evaluation shows the seeded policy alone
    opts = dict(steps=400, learning_starts=400, eval_every=400, runs_dir=str(tmp_path),
                hidden=(64, 64), progress=False, tensorboard=False)
    seeded = train("seeded_sac", "Pendulum-v1", {**opts, "dataset": pendulum_dataset,
                                                 "pretrain_steps": 3000, "bc_weight": 1.0})
    plain = train("sac", "Pendulum-v1", opts)
    assert seeded["eval"]["mean_return"] > -400 > plain["eval"]["mean_return"]
    agent = load_agent(seeded["run_dir"], "latest")[0]
    # the critics were fitted to returns-to-go: negative values of Pendulum's scale, not ~0
    ds = load_dataset(pendulum_dataset)
    q = agent.critic.apply_fn(agent.critic.params, ds.observations[:500], ds.actions[:500])
    rtg = ds.returns_to_go(0.99)[:500]
    assert np.corrcoef(np.asarray(q[0]), rtg)[0, 1] > 0.5


def test_seed_from_a_deterministic_bc_run_is_refused(pendulum_dataset, tmp_path):
    from contrl.errors import ContrlError
    from contrl.train import train
    opts = dict(runs_dir=str(tmp_path), progress=False, tensorboard=False, hidden=(16, 16))
    # BC's default head is the deterministic one, whose network is not SAC's actor
    bc = train("bc", "Pendulum-v1", {**opts, "dataset": pendulum_dataset, "steps": 100,
                                     "update_every": 100, "eval_every": 100})
    with pytest.raises(ContrlError, match="--head gaussian"):
        train("seeded_sac", "Pendulum-v1", {**opts, "seed_from": bc["run_dir"], "steps": 100})
    # a bc run of another env is named as such (it failed on its network's shapes)
    with pytest.raises(ContrlError, match="imitates Pendulum-v1, not InvertedPendulum-v5"):
        train("seeded_sac", "InvertedPendulum-v5", {**opts, "seed_from": bc["run_dir"],
                                                    "steps": 100})


def test_seed_from_a_bc_run_whose_data_was_remade_since_is_refused(pendulum_dataset, tmp_path,
                                                                    monkeypatch):
    from contrl.data.datasets import Dataset
    from contrl.errors import ContrlError
    from contrl.train import train
    opts = dict(runs_dir=str(tmp_path), progress=False, tensorboard=False, hidden=(16, 16))
    bc = train("bc", "Pendulum-v1", {**opts, "dataset": pendulum_dataset, "steps": 100,
                                     "update_every": 100, "eval_every": 100, "eval_episodes": 1,
                                     "head": "gaussian"})
    # the same data: seeded (the actor is the bc policy's), no refusal
    run = train("seeded_sac", "Pendulum-v1", {**opts, "seed_from": bc["run_dir"], "steps": 100,
                                              "pretrain_steps": 100, "learning_starts": 100,
                                              "eval_every": 100, "eval_episodes": 1})
    assert run["step"] == 100
    # the dataset remade under its name: other transitions, another fingerprint
    monkeypatch.setattr(Dataset, "fingerprint", property(lambda self: "d1:" + "f" * 16))
    with pytest.raises(ContrlError, match=f"the bc run {bc['run_dir']} was trained on other "
                                          "transitions than .* train the bc run again"):
        train("seeded_sac", "Pendulum-v1", {**opts, "seed_from": bc["run_dir"], "steps": 100,
                                            "pretrain_steps": 100})
