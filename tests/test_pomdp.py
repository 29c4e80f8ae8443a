"""Partially observed tasks and the memory wrappers (frame stack, previous action/reward)."""
import numpy as np
import pytest

from contrl.envs import known_env_ids, make_env
from contrl.envs.pomdp import VARIANTS
from contrl.envs.state import get_env_state, set_env_state
from contrl.errors import UnknownIdError


def test_variants_keep_the_recorded_indices_of_the_full_observation():
    for env_id in ("Pendulum-P-v1", "Pendulum-V-v1", "Hopper-V-v5"):
        variant = VARIANTS[env_id]
        full, part = make_env(variant.base), make_env(env_id)
        o_full, _ = full.reset(seed=3)
        o_part, _ = part.reset(seed=3)
        np.testing.assert_allclose(o_part, o_full[list(variant.keep)], rtol=1e-6)
        a = np.full(full.action_space.shape, 0.3, np.float32)
        np.testing.assert_allclose(part.step(a)[0], full.step(a)[0][list(variant.keep)], rtol=1e-6)
        assert env_id in known_env_ids(dmc=False)


def test_first_target_reacher_shows_the_target_on_the_first_step_only():
    env = make_env("Reacher-FirstTarget-v5")
    first, _ = env.reset(seed=0)
    assert np.any(first[[4, 5]] != 0)
    for _ in range(3):
        obs = env.step(np.zeros(2, np.float32))[0]
        assert np.all(obs[[4, 5, 8, 9]] == 0) and np.any(obs[:4] != 0)
    # one dtype for the space, the first observation and the later ones
    assert env.observation_space.dtype == first.dtype == obs.dtype == np.float32
    assert env.observation_space.contains(first)


def test_dmc_variants_split_the_observation_keys():
    assert make_env("dmc:cartpole-swingup-P").observation_space.shape == (3,)  # position
    assert make_env("dmc:cartpole-swingup-V").observation_space.shape == (2,)  # velocity
    assert make_env("dmc:hopper-hop-P").observation_space.shape == (8,)  # position + touch
    from contrl.envs.pomdp import dmc_keys_kept  # velocities under other names (manipulator,
    keys = ("arm_pos", "arm_vel", "object_vel", "joint_velocites", "touch")  # stacker, dog)
    assert dmc_keys_kept(keys, "P") == ("arm_pos", "touch")
    assert dmc_keys_kept(keys, "V") == ("arm_vel", "object_vel", "joint_velocites")
    # quadruped's egocentric_state holds joint angles and velocities: no -P or -V by key
    from contrl.errors import ContrlError
    with pytest.raises(ContrlError, match="dmc:quadruped-walk-P: its observation key.s. "
                                          "egocentric_state, imu mix positions and velocities"):
        dmc_keys_kept(("egocentric_state", "imu", "torso_upright", "torso_velocity"), "P",
                      "dmc:quadruped-walk")
    from contrl.envs import resolve_env_id  # refused by id, before anything is built
    with pytest.raises(ContrlError, match="dmc:dog-run-V: dog's observation keys"):
        resolve_env_id("dmc:dog-run-V")
    assert resolve_env_id("dmc:walker-run-P") == "dmc:walker-run-P"


def test_unknown_variant_names_the_closest_ids():
    with pytest.raises(UnknownIdError, match="closest: Pendulum-"):
        make_env("Pendulum-X-v1")


def test_frame_stack_and_previous_action_reward_and_their_resume_state():
    env = make_env("Pendulum-V-v1", frame_stack=3, prev_action=True, prev_reward=True)
    assert env.observation_space.shape == (9,)
    obs, _ = env.reset(seed=0)
    v0 = obs[6]
    np.testing.assert_array_equal(obs[:6], 0)  # two frames of zeros before the start
    np.testing.assert_array_equal(obs[7:], 0)  # no previous action or reward yet
    obs, reward, *_ = env.step(np.array([0.5], np.float32))
    assert obs[3] == v0 and obs[7] == 0.5 and obs[8] == np.float32(reward)
    saved = get_env_state(env)
    a = env.step(np.array([-2.0], np.float32))[0]  # clipped to -1 in the previous-action slot
    assert a[7] == -1.0
    set_env_state(env, saved)
    np.testing.assert_array_equal(env.step(np.array([-2.0], np.float32))[0], a)
