"""The policy interface: carries reset per env, saved and restored, random and noisy policies."""
import jax.numpy as jnp
import numpy as np
import pytest

from contrl.policy import (NoisyPolicy, Policy, RandomPolicy, carry_arrays, reset_carry,
                           restore_carry)


class TwoPartCarry:
    """A carry with two leaves of different shapes; its initial value is not zero."""

    def initial_carry(self, n):
        return {"h": jnp.full((n, 2), 7.0), "t": jnp.zeros(n, jnp.int32)}

    def eval_actions(self, obs, carry):
        return jnp.zeros((len(obs), 1)), {"h": carry["h"] + 1, "t": carry["t"] + 1}


def test_reset_carry_restores_only_the_finished_envs():
    p = TwoPartCarry()
    carry = {"h": jnp.asarray([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "t": jnp.asarray([4, 5, 6])}
    out = reset_carry(p, carry, np.array([False, True, False]))
    np.testing.assert_array_equal(out["h"], [[1, 2], [7, 7], [5, 6]])
    np.testing.assert_array_equal(out["t"], [4, 0, 6])
    assert reset_carry(RandomPolicy(1, 0), (), np.array([True])) == ()


def test_carry_round_trips_through_named_arrays():
    p = TwoPartCarry()
    carry = {"h": jnp.asarray([[1.5, 2.5]]), "t": jnp.asarray([9], jnp.int32)}
    arrays = carry_arrays(carry)
    assert sorted(arrays) == ["carry/0", "carry/1"]
    back = restore_carry(arrays, p.initial_carry(1))
    np.testing.assert_array_equal(back["h"], carry["h"])
    assert back["t"].dtype == np.int32 and int(back["t"][0]) == 9
    with pytest.raises(ValueError, match="does not match"):
        restore_carry(arrays, p.initial_carry(2))
    assert restore_carry({}, ()) == ()


def test_random_and_noisy_policies():
    a, carry = RandomPolicy(2, 0).eval_actions(np.zeros((500, 3)), ())
    assert a.shape == (500, 2) and a.dtype == np.float32 and carry == ()
    assert np.abs(a).max() <= 1 and abs(a.mean()) < 0.1
    a2, _ = RandomPolicy(2, 0).eval_actions(np.zeros((500, 3)), ())
    np.testing.assert_array_equal(a, a2)  # seeded
    noisy = NoisyPolicy(TwoPartCarry(), 0.5, 0)
    assert isinstance(noisy, Policy)
    act, c = noisy.eval_actions(np.zeros((1000, 3)), noisy.initial_carry(1000))
    assert 0.4 < float(np.std(act)) < 0.55 and np.abs(act).max() <= 1  # clipped N(0, 0.5^2)
    assert int(c["t"][0]) == 1  # the wrapped policy's carry passes through
