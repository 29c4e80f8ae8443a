import numpy as np
import pytest

from contrl.envs import EnvPool, get_env_state, make_env, resolve_env_id, set_env_state
from contrl.errors import ContrlError, UnknownIdError


def test_actions_rescaled_to_unit_box():
    env = make_env("Pendulum-v1")  # native bounds [-2, 2]
    assert env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    np.testing.assert_allclose(env.action(np.array([1.0])), [2.0])
    np.testing.assert_allclose(env.action(np.array([-0.5])), [-1.0])
    np.testing.assert_allclose(env.action(np.array([7.0])), [2.0])  # clipped


def test_unbounded_actions_are_refused():
    """Bounds of -inf/inf made every action nan (low + (a + 1) * inf / 2)."""
    import gymnasium as gym

    from contrl.envs.make import RescaleToUnit

    class Free(gym.Env):
        observation_space = gym.spaces.Box(-1.0, 1.0, (1,))
        action_space = gym.spaces.Box(-np.inf, np.inf, (2,))

    with pytest.raises(ContrlError, match="action bounds are not finite"):
        RescaleToUnit(Free())


def test_unknown_env_names_closest():
    with pytest.raises(UnknownIdError, match="closest: HalfCheetah-v5"):
        resolve_env_id("HalfCheeta-v5")


def test_discrete_env_is_refused():
    with pytest.raises(ContrlError, match="continuous"):
        make_env("CartPole-v1")


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Hopper-v5"])
def test_env_state_roundtrip_is_exact(env_id):
    rng = np.random.default_rng(0)
    a, b = make_env(env_id), make_env(env_id)
    a.reset(seed=1)
    b.reset(seed=2)
    for _ in range(7):
        a.step(rng.uniform(-1, 1, a.action_space.shape))
    set_env_state(b, get_env_state(a))
    acts = rng.uniform(-1, 1, (30,) + a.action_space.shape)
    for act in acts:
        oa, ra, ta, tra, _ = a.step(act)
        ob, rb, tb, trb, _ = b.step(act)
        np.testing.assert_array_equal(oa, ob)
        assert (ra, ta, tra) == (rb, tb, trb)
        if ta or tra:
            break


def test_pool_reports_truncation_with_real_final_obs():
    pool = EnvPool("Pendulum-v1", 1, seed=0)  # 200-step time limit, never terminates
    for t in range(200):
        nxt, _, term, trunc = pool.step(np.zeros((1, 1), np.float32))
        if t < 199:
            assert not trunc[0]
            pool.advance(nxt, term | trunc)
    assert trunc[0] and not term[0]
    finished = pool.advance(nxt, term | trunc)
    assert finished and finished[0][1] == 200
    assert not np.array_equal(pool.obs[0], nxt[0])  # the reset obs is kept apart from the final one


def test_pool_reports_true_termination():
    pool = EnvPool("InvertedPendulum-v5", 1, seed=0)
    for _ in range(1000):
        nxt, _, term, trunc = pool.step(np.ones((1, 1), np.float32))
        if term[0] or trunc[0]:
            break
        pool.advance(nxt, term | trunc)
    assert term[0] and not trunc[0]


def test_parallel_envs_match_single_env_runs():
    """Env i of an n-env pool (seed s + i), and its part of the replay buffer, equal a one-env
    run seeded s + i fed the same actions, episode ends included."""
    from contrl.data import ReplayBuffer
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, (260, 2, 1)).astype(np.float32)  # crosses Pendulum's 200-step limit
    pools = [EnvPool("Pendulum-v1", 2, seed=5), EnvPool("Pendulum-v1", 1, seed=6)]
    bufs = [ReplayBuffer(1000, 3, 1, n_envs=2), ReplayBuffer(500, 3, 1, n_envs=1)]
    for a in acts:
        for pool, buf, act in zip(pools, bufs, (a, a[1:])):
            nxt, r, te, tr = pool.step(act)
            buf.add(pool.obs, act, r, te, tr, nxt)
            pool.advance(nxt, te | tr)
    np.testing.assert_array_equal(pools[0].obs[1], pools[1].obs[0])
    for k in ("obs", "action", "reward", "terminated", "valid"):
        np.testing.assert_array_equal(getattr(bufs[0], k)[1, :262], getattr(bufs[1], k)[0, :262])


def test_dict_observations_flatten_in_the_named_order():
    from contrl.envs.make import default_obs_keys
    env = make_env("AntMaze_UMaze-v5", obs_keys=("desired_goal", "observation"))
    obs, _ = env.reset(seed=0)
    goal = env.unwrapped.goal
    assert obs.shape == (29,) and obs.dtype == np.float32  # the ant: 27 numbers (no contact forces)
    np.testing.assert_allclose(obs[:2], goal, rtol=1e-6)  # desired_goal first, as named
    assert default_obs_keys("AntMaze_UMaze-v5") == ("observation", "achieved_goal", "desired_goal")
    assert default_obs_keys("PointMaze_UMaze-v3") == ("observation", "desired_goal")
    with pytest.raises(ContrlError, match="observation keys goal not among its keys"):
        make_env("AntMaze_UMaze-v5", obs_keys=("observation", "goal"))


def test_pool_keeps_episode_success():
    pool = EnvPool("AntMaze_UMaze-v5", 1, seed=0)
    pool.step(np.zeros((1, 8), np.float32))
    assert pool.reports_success
    pool.episode_success[0] = True  # as if the ant had reached the goal earlier
    obs, r, term, trunc = pool.step(np.zeros((1, 8), np.float32))
    (ep,) = pool.advance(obs, np.array([True]))
    assert ep.success is True and ep.length == 2 and not pool.episode_success[0]
    plain = EnvPool("Pendulum-v1", 1, seed=0)
    obs, *_ = plain.step(np.zeros((1, 1), np.float32))
    assert plain.advance(obs, np.array([True]))[0].success is None


def test_info_success_reads_either_key():
    from contrl.envs.make import info_success
    assert info_success({"is_success": 1.0}) is True
    assert info_success({"success": False}) is False
    assert info_success({"x_position": 3.0}) is None


def test_episode_limit_in_agent_steps():
    # whole-episode training windows (seq_len -1) are this long: dm_control's limit was
    # unknown (refused as "no time limit") and an action repeat's was counted in env steps
    assert EnvPool("Hopper-v5", 1, 0).episode_limit == 1000
    assert EnvPool("Hopper-v5", 1, 0, action_repeat=4).episode_limit == 250
    assert EnvPool("dmc:cartpole-swingup-P", 1, 0, action_repeat=3).episode_limit == 334
