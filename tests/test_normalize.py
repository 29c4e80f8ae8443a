"""Running statistics: observation and return normalizers."""
import jax.numpy as jnp
import numpy as np

from contrl.normalize import RunningStats, update_return_stats
from rollout_data import col


def test_running_stats_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (50, 4)), rng.normal(-1, 0.5, (30, 4))
    s = RunningStats.create((4,)).update(jnp.asarray(a)).update(jnp.asarray(b))
    both = np.concatenate([a, b])
    np.testing.assert_allclose(s.mean, both.mean(0), rtol=1e-4)
    np.testing.assert_allclose(s.var, both.var(0), rtol=1e-3)
    assert np.all(np.abs(s.normalize(jnp.asarray(both * 100), 5.0)) <= 5.0)


def test_return_stats_track_the_discounted_return():
    # rewards 1, 2 with gamma 0.5: running returns 1, then 0.5 * 1 + 2 = 2.5; reset after a done
    stats, ret = update_return_stats(RunningStats.create(), jnp.zeros(1), col(1, 2), col(0, 1), 0.5)
    assert abs(float(stats.mean) - 1.75) < 1e-3 and abs(float(stats.var) - 0.5625) < 1e-3
    assert float(ret[0]) == 0.0
