"""IQL: its losses by hand, and learning on a Pendulum dataset."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.agents.iql import awr_weights, expectile_loss


def test_expectile_loss_by_hand():
    diff = jnp.asarray([1.0, -2.0])
    # positive errors weigh 0.7, negative ones 0.3: (0.7 * 1 + 0.3 * 4) / 2
    assert float(expectile_loss(diff, 0.7)) == pytest.approx(0.95)
    assert float(expectile_loss(diff, 0.5)) == pytest.approx(0.5 * 0.5 * (1 + 4))


def test_awr_weights_are_clipped():
    w = awr_weights(jnp.asarray([0.0, 1.0, 10.0]), 3.0, 100.0)
    np.testing.assert_allclose(w, [1.0, math.exp(3.0), 100.0], rtol=1e-5)


@pytest.mark.slow
def test_iql_learns_pendulum_from_a_dataset(pendulum_dataset, tmp_path, offline_run):
    out = offline_run("iql", pendulum_dataset, tmp_path, steps=3000, eval_every=3000,
                      eval_episodes=5, hidden=(64, 64), batch_size=256, steps_per_call=1000)
    # the noisy expert data is enough for IQL to get most of the way to the expert
    assert out["eval"]["normalized_score"] >= 80, out["eval"]


def test_actor_hidden_sizes_the_actor_alone():
    from contrl.agents.iql import IQL, IQLConfig
    from contrl.config import ConfigError

    agent = IQL.create(IQLConfig(hidden=(8, 8), actor_hidden=(16, 16, 16)), 5, 2, seed=0)
    actor_kernels = [v.shape for v in jax.tree_util.tree_leaves(agent.actor.params) if v.ndim == 2]
    value_kernels = [v.shape for v in jax.tree_util.tree_leaves(agent.value.params) if v.ndim == 2]
    assert actor_kernels == [(5, 16), (16, 16), (16, 16), (16, 2)]
    assert value_kernels == [(5, 8), (8, 8), (8, 1)]
    # empty: the shared widths
    agent = IQL.create(IQLConfig(hidden=(8, 8)), 5, 2, seed=0)
    assert [v.shape for v in jax.tree_util.tree_leaves(agent.actor.params) if v.ndim == 2] == [
        (5, 8), (8, 8), (8, 2)]
    with pytest.raises(ConfigError, match="actor_hidden"):
        IQLConfig(actor_hidden=(0,)).validate()
