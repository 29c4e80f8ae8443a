import numpy as np
import pytest

from contrl.data import ReplayBuffer


def _fill(buf, n_steps, ends=()):
    """Episodes of a counter env: obs = [t], reward = t; episode ends at the given steps."""
    obs = np.array([[0.0]], np.float32)
    for t in range(n_steps):
        nxt = np.array([[t + 1.0]], np.float32)
        term = t in ends and t % 2 == 0
        trunc = t in ends and t % 2 == 1
        buf.add(obs, np.array([[t]], np.float32), np.array([t], np.float32),
                np.array([term]), np.array([trunc]), nxt)
        obs = np.array([[100.0 + t]], np.float32) if t in ends else nxt


def test_next_obs_is_real_final_obs_and_discounts():
    buf = ReplayBuffer(100, 1, 1, seed=0)
    _fill(buf, 10, ends=(3, 6))  # 3 (odd): truncation, 6 (even): termination
    assert len(buf) == 10
    b = buf.sample(64, gamma=0.9, k=2)
    assert b.obs.shape == (2, 64, 1) and b.reward.shape == (2, 64)
    for o, a, r, d, n in zip(b.obs.ravel(), b.action.ravel(), b.reward.ravel(),
                             b.discount.ravel(), b.next_obs.ravel()):
        t = int(a)
        assert r == t
        assert n == t + 1  # the real next observation, never the reset one
        assert o == (100.0 + t - 1 if t - 1 in (3, 6) else t)
        assert d == pytest.approx(0.0 if t == 6 else 0.9)  # truncation at 3 keeps gamma


def test_ring_overwrites_oldest_and_stays_consistent():
    buf = ReplayBuffer(8, 1, 1, seed=1)
    _fill(buf, 20, ends=(11,))
    b = buf.sample(200, 0.99)
    acts = b.action.ravel()
    assert acts.min() >= 13  # only the newest transitions survive
    np.testing.assert_array_equal(b.next_obs.ravel(), acts + 1)


def test_multiple_envs_have_independent_episodes():
    buf = ReplayBuffer(40, 1, 1, n_envs=2, seed=0)
    obs = np.zeros((2, 1), np.float32)
    for t in range(6):
        nxt = obs + 1
        done = np.array([t == 2, False])
        buf.add(obs, obs, np.zeros(2), done, np.zeros(2, bool), nxt)
        obs = np.where(done[:, None], -50.0, nxt).astype(np.float32)
    b = buf.sample(300, 0.99)
    np.testing.assert_array_equal(b.next_obs, b.obs + 1)
    assert len(buf) == 12


def test_transitions_are_drawn_uniformly_across_envs_whose_rings_filled_unevenly():
    """Env 0's episodes last one step (two rows each: the step and its final observation),
    env 1's never end (one row each): each holds 1000 transitions, so each gives half the
    samples (envs drawn equally and rows within them gave env 0 a third)."""
    buf = ReplayBuffer(10_000, 1, 1, n_envs=2, seed=0)
    for _ in range(1000):
        buf.add(np.zeros((2, 1), np.float32), np.array([[0.0], [1.0]], np.float32),
                np.zeros(2), np.array([True, False]), np.zeros(2, bool),
                np.ones((2, 1), np.float32))
    assert buf.filled.tolist() == [2000, 1001] and len(buf) == 2000
    share = (buf.sample(20_000, 0.99).action == 0).mean()
    assert share == pytest.approx(0.5, abs=0.015)  # binomial sd 0.0035


def test_one_env_sampling_is_unchanged_by_the_flat_draw():
    """With one env, rows come from the generator exactly as before (runs resume alike)."""
    buf = ReplayBuffer(50, 1, 1, seed=3)
    _fill(buf, 30, ends=(9,))
    rng = np.random.default_rng(3)
    e, r = buf.sample_indices(5)
    want = (rng.random(5) * buf.filled[0]).astype(np.int64)  # the former draw
    assert buf.valid[0, want].all()  # (so none was drawn again)
    assert e.tolist() == [0] * 5 and r.tolist() == want.tolist()


def test_an_episode_whose_start_was_overwritten_is_marked_cut():
    """7-step episodes in a 20-row ring: the oldest stored piece has lost its start."""
    buf = ReplayBuffer(20, 1, 1, seed=0)
    _fill(buf, 28, ends=(6, 13, 20, 27))
    eps = buf.episodes()
    assert [len(e["rewards"]) for e in eps] == [3, 7, 7] and eps[0]["actions"][0] == 11
    assert [e["cut"] for e in eps] == [True, False, False]


def test_save_load_roundtrip_continues_identically():
    a = ReplayBuffer(50, 1, 1, seed=3)
    _fill(a, 30, ends=(9,))
    b = ReplayBuffer(50, 1, 1, seed=99)
    b.load_state(a.state(), a.rng.bit_generator.state)
    for x, y in zip(a.sample(16, 0.99, 2), b.sample(16, 0.99, 2)):
        np.testing.assert_array_equal(x, y)


def test_empty_buffer_sample_errors():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(10, 1, 1).sample(4, 0.99)


def test_humanoid_sized_buffer_memory():
    buf = ReplayBuffer(1_000_000, 348, 17)
    nbytes = sum(getattr(buf, k).nbytes for k in ("obs", "action", "reward", "terminated", "valid"))
    assert nbytes < 1.6e9  # observations stored once: ~1.46 GB (the limit asked for is 3 GB)


def test_n_step_targets_match_hand_computation():
    # counter env: reward t at step t; step 3 truncates (odd), step 6 terminates (even)
    buf = ReplayBuffer(100, 1, 1, seed=0)
    _fill(buf, 10, ends=(3, 6))
    g = 0.5
    b = buf.sample(400, gamma=g, k=1, n_step=3)
    expected = {  # t -> (reward sum, discount, next obs)
        0: (0 + g * 1 + g**2 * 2, g**3, 3.0),
        1: (1 + g * 2 + g**2 * 3, g**3, 4.0),   # runs into the truncation at 3: bootstrap
        2: (2 + g * 3, g**2, 4.0),              # truncated after 2 steps: final obs 4
        3: (3, g, 4.0),
        4: (4 + g * 5 + g**2 * 6, 0.0, 7.0),    # terminates at 6: no bootstrap
        5: (5 + g * 6, 0.0, 7.0),
        6: (6, 0.0, 7.0),
        7: (7 + g * 8 + g**2 * 9, g**3, 10.0),
        8: (8 + g * 9, g**2, 10.0),             # stops at the newest stored step
        9: (9, g, 10.0),
    }
    seen = set()
    for a, r, d, n in zip(b.action.ravel(), b.reward.ravel(), b.discount.ravel(), b.next_obs.ravel()):
        t = int(a)
        seen.add(t)
        assert (r, d, n) == pytest.approx(expected[t]), t
    assert seen == set(expected)


def test_n_step_one_equals_one_step():
    buf = ReplayBuffer(60, 1, 1, seed=0)
    _fill(buf, 40, ends=(11, 20))
    state = buf.rng.bit_generator.state
    one = buf.sample(64, 0.9)
    buf.rng.bit_generator.state = state
    same = buf.sample(64, 0.9, n_step=1)
    for x, y in zip(one, same):
        np.testing.assert_array_equal(x, y)
