"""PPO: its losses by hand, the update, config checks."""
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.onpolicy import Rollout
from contrl.agents.ppo import PPO, PPOConfig, clipped_surrogate_loss, value_loss
from contrl.config import ConfigError


def test_ppo_losses_by_hand():
    ratio = jnp.asarray([0.5, 1.5])
    assert float(clipped_surrogate_loss(ratio, jnp.ones(2), 0.2)) == pytest.approx(-0.85)
    assert float(clipped_surrogate_loss(ratio, -jnp.ones(2), 0.2)) == pytest.approx(1.15)
    v, old, target = jnp.asarray([2.0]), jnp.asarray([1.0]), jnp.asarray([3.0])
    assert float(value_loss(v, old, target, None)) == pytest.approx(0.5)
    assert float(value_loss(v, old, target, 0.2)) == pytest.approx(1.62)  # 0.5 * (1.2 - 3)^2


def test_ppo_update_changes_policy_and_merges_normalizers():
    cfg = PPOConfig(rollout_steps=8, minibatches=2, epochs=2)
    agent = PPO.create(cfg, 3, 2, seed=0, num_envs=2)
    rng = np.random.default_rng(0)
    obs = rng.normal(5, 1, (8, 2, 3)).astype(np.float32)
    ro = Rollout(obs, rng.normal(size=(8, 2, 2)).astype(np.float32),
                 np.ones((8, 2), np.float32), np.zeros((8, 2), np.float32),
                 np.zeros((8, 2), np.float32), obs + 0.1)
    before = np.asarray(agent.policy.params["params"]["log_std"]).copy()
    new, info = agent.update(ro, np.float32(1.0))
    assert set(info) == set(PPO.METRICS)
    assert not np.allclose(before, new.policy.params["params"]["log_std"])
    np.testing.assert_allclose(new.obs_stats.mean, obs.reshape(-1, 3).mean(0), rtol=1e-3)
    assert float(new.running_return[0]) > 1.0  # running discounted return of reward 1
    # lr_scale 0 (the end of an annealed run) leaves the parameters unchanged
    trained = np.asarray(new.policy.params["params"]["log_std"]).copy()
    again, _ = new.update(ro, np.float32(0.0))  # (update donates its agent)
    np.testing.assert_array_equal(trained, np.asarray(again.policy.params["params"]["log_std"]))


def test_config_errors():
    with pytest.raises(ConfigError, match="optimizer"):
        PPOConfig(optimizer="sgd").validate()
    with pytest.raises(ConfigError, match="activation"):
        PPOConfig(activation="gelu").validate()


def test_acting_outside_training_gives_actions_in_bounds():
    """Evaluation, collection and load_policy get [-1, 1] actions from a Gaussian policy (the
    training loop clips what the env gets; a collected dataset of unclipped draws is refused
    by the loaders)."""
    from contrl.policy import SampledPolicy
    agent = PPO.create(PPOConfig(init_log_std=3.0, normalize_obs=False), 3, 1, seed=0)
    obs = np.full((256, 3), 50.0, np.float32)
    drawn, _ = SampledPolicy(agent, 0).eval_actions(obs, ())
    assert np.abs(drawn).max() == 1.0  # std 20: most draws were outside
    shifted = agent.replace(policy=agent.policy.replace(
        apply_fn=lambda params, x: (jnp.full((x.shape[0], 1), 5.0), jnp.zeros((x.shape[0], 1)))))
    np.testing.assert_array_equal(shifted.eval_actions(obs)[0], np.ones((256, 1)))
