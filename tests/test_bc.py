"""Behaviour cloning: its losses, the policy export that seeds SAC, and learning on Pendulum."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.bc import BC, BCConfig, mse_loss, tanh_gaussian_log_prob
from contrl.agents.sac import SAC, SACConfig
from contrl.config import ConfigError


def test_tanh_gaussian_log_prob_by_hand():
    # a = tanh(0.5): u = 0.5; N(0.5; 0, 1) and the Jacobian log(1 - tanh(0.5)^2)
    a = jnp.tanh(jnp.asarray([[0.5]]))
    lp = tanh_gaussian_log_prob(jnp.zeros((1, 1)), jnp.zeros((1, 1)), a)
    expected = -0.5 * (0.25 + np.log(2 * np.pi)) - np.log(1 - np.tanh(0.5) ** 2)
    assert float(lp[0]) == pytest.approx(expected, rel=1e-4)
    assert float(mse_loss(jnp.asarray([[1.0, 2.0]]), jnp.asarray([[0.0, 0.0]]))) == 5.0


def test_export_folds_the_normalization_into_sac_actor():
    obs = np.random.default_rng(0).normal(3.0, 2.0, (64, 3)).astype(np.float32)
    bc = BC.create(BCConfig(head="gaussian", hidden=(16, 16)), 3, 1, seed=0).fit_normalizer(obs)
    sac = SAC.create(SACConfig(hidden=(16, 16)), 3, 1, seed=0)
    exported = bc.export_actor()
    bc_out = bc.policy.apply_fn(bc.policy.params, (obs - bc.obs_mean) / bc.obs_std)
    sac_out = sac.actor.apply_fn(exported, obs)
    for x, y in zip(bc_out, sac_out):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    assert jax.tree_util.tree_structure(exported) == jax.tree_util.tree_structure(sac.actor.params)


def test_config_errors():
    with pytest.raises(ConfigError, match="head"):
        BCConfig(head="mixture").validate()


@pytest.mark.slow
def test_bc_imitates_pendulum_expert(pendulum_expert, tmp_path, monkeypatch):
    from contrl.rundir import collect_run
    from contrl.train import train
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    info = collect_run(pendulum_expert, "pendulum-expert-v0", 20_000)
    out = train("bc", "Pendulum-v1", dict(dataset="pendulum-expert-v0", steps=3000,
                                         eval_every=3000, runs_dir=str(tmp_path),
                                         progress=False, tensorboard=False))
    # at least 90% of the way from the random policy's return to the expert's
    assert out["eval"]["normalized_score"] >= 90, (out["eval"], info)
