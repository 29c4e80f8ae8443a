"""IQL: its losses by hand, and learning on a Pendulum dataset."""
import math

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
