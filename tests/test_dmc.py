import numpy as np
import pytest

from contrl.envs import EnvPool, get_env_state, make_env, resolve_env_id, set_env_state
from contrl.errors import UnknownIdError


def test_walker_spaces_and_seeding():
    a, b, c = make_env("dmc:walker-walk"), make_env("dmc:walker-walk"), make_env("dmc:walker-walk")
    assert a.observation_space.shape == (24,)  # orientations 14 + height 1 + velocity 9
    assert a.action_space.shape == (6,) and a.action_space.high.max() == 1
    oa, ob, oc = a.reset(seed=3)[0], b.reset(seed=3)[0], c.reset(seed=4)[0]
    assert oa.dtype == np.float32
    np.testing.assert_array_equal(oa, ob)
    assert not np.array_equal(oa, oc)


def test_step_limit_is_a_truncation_and_action_repeat_counts_decisions():
    for repeat, length in ((1, 1000), (2, 500)):
        pool = EnvPool("dmc:cartpole-balance", 1, seed=0, action_repeat=repeat)
        for t in range(length):
            nxt, _, term, trunc = pool.step(np.zeros((1, 1), np.float32))
            if term[0] or trunc[0]:
                break
            pool.advance(nxt, term | trunc)
        assert t == length - 1 and trunc[0] and not term[0]


def test_dmc_state_roundtrip_is_exact():
    rng = np.random.default_rng(0)
    a, b = make_env("dmc:walker-run"), make_env("dmc:walker-run")
    a.reset(seed=1)
    b.reset(seed=2)
    for _ in range(20):
        a.step(rng.uniform(-1, 1, 6))
    set_env_state(b, get_env_state(a))
    for act in rng.uniform(-1, 1, (30, 6)):
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        np.testing.assert_array_equal(oa, ob)
        assert ra == rb


def test_unknown_dmc_task_names_closest():
    with pytest.raises(UnknownIdError, match="dmc:walker-walk"):
        resolve_env_id("dmc:walker-wlak")


@pytest.mark.parametrize("env_id", ["dmc:reacher-easy", "dmc:point_mass-hard"])
def test_resume_keeps_the_episodes_target(env_id):
    """reacher moves its target geom at each episode's start, point_mass-hard its tendon
    wraps: a pool resumed in its second episode carries on with that episode's target, not
    the one its own reset drew."""
    rng = np.random.default_rng(0)
    a = EnvPool(env_id, 1, seed=3)
    for _ in range(a.episode_limit + 37):
        nxt, _, term, trunc = a.step(rng.uniform(-1, 1, (1, a.action_dim)).astype(np.float32))
        a.advance(nxt, term | trunc)
    b = EnvPool(env_id, 1, seed=3)
    b.load_state(a.state())
    for act in rng.uniform(-1, 1, (20, 1, a.action_dim)).astype(np.float32):
        oa, ra, *_ = a.step(act)
        ob, rb, *_ = b.step(act)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
