"""Tiny hand-checkable rollouts shared by the on-policy tests: (T, 1) arrays, one env."""
import jax.numpy as jnp
import numpy as np


def col(*xs):
    """A (T, 1) array: one environment."""
    return jnp.asarray(xs, jnp.float32)[:, None]


R = col(1, 2, 3)
V = col(0.5, 1, 1.5)
V_NEXT = col(1, 1.5, 2)
NONE = col(0, 0, 0)
AT1 = col(0, 1, 0)


def close(a, b):
    np.testing.assert_allclose(np.asarray(a).ravel(), b, rtol=1e-6)
