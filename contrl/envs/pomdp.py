"""Partially observed variants of fully observed tasks, and the wrappers that give a
feed-forward or recurrent policy some memory back.

Naming (as in the pomdp-baselines benchmark): ``<Task>-P-v<N>`` keeps positions and angles
only, ``<Task>-V-v<N>`` velocities only; ``dmc:<domain>-<task>-P`` / ``-V`` do the same with
dm_control's observation keys (velocity keys, ``*velocit*`` or ``*_vel``, go to -V, all others,
positions, orientations, heights, touch sensors, to -P; quadruped and dog, whose keys mix the
two, have no such variants). ``Reacher-FirstTarget-v5`` shows the
target only on the first step of an episode, so a policy must remember it for 49 steps.

Every variant records which observation indices it keeps and why (``VARIANTS``).
"""
from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np

from contrl.errors import ContrlError


class Variant(NamedTuple):
    base: str  # the fully observed Gymnasium id
    keep: tuple[int, ...]  # observation indices kept
    why: str
    make_kwargs: tuple = ()  # extra gym.make arguments of the base task


def _span(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b))


# Gymnasium MuJoCo v5 observations are qpos (without the root's x, or x-y for Ant) followed
# by qvel; Ant-v5's variants leave out the 78 contact forces, as D4RL did. (pomdp-baselines'
# PyBullet -P variants kept the feet's ground contacts, which MuJoCo's v5 observations lack:
# contrl's -P variants hide a little more.)
VARIANTS: dict[str, Variant] = {
    "Pendulum-P-v1": Variant("Pendulum-v1", (0, 1),
                             "cos and sin of the angle (no angular velocity)"),
    "Pendulum-V-v1": Variant("Pendulum-v1", (2,), "angular velocity only (no angle)"),
    "HalfCheetah-P-v5": Variant("HalfCheetah-v5", _span(0, 8),
                                "root height and angle, 6 joint angles (qpos[1:])"),
    "HalfCheetah-V-v5": Variant("HalfCheetah-v5", _span(8, 17), "root and joint velocities (qvel)"),
    "Hopper-P-v5": Variant("Hopper-v5", _span(0, 5), "root height and angle, 3 joint angles"),
    "Hopper-V-v5": Variant("Hopper-v5", _span(5, 11), "root and joint velocities (qvel)"),
    "Walker2d-P-v5": Variant("Walker2d-v5", _span(0, 8), "root height and angle, 6 joint angles"),
    "Walker2d-V-v5": Variant("Walker2d-v5", _span(8, 17), "root and joint velocities (qvel)"),
    "Ant-P-v5": Variant("Ant-v5", _span(0, 13),
                        "torso height and orientation, 8 joint angles (no contact forces)",
                        (("include_cfrc_ext_in_observation", False),)),
    "Ant-V-v5": Variant("Ant-v5", _span(13, 27),
                        "torso and joint velocities (qvel; no contact forces)",
                        (("include_cfrc_ext_in_observation", False),)),
}
# Reacher-v5: [cos q (2), sin q (2), target x-y (2), qvel (2), fingertip - target x-y (2)].
FIRST_TARGET = {"Reacher-FirstTarget-v5": ("Reacher-v5", (4, 5, 8, 9))}
DMC_SUFFIXES = ("-P", "-V")


def pomdp_ids() -> list[str]:
    return sorted(VARIANTS) + sorted(FIRST_TARGET)


def describe_variants() -> list[tuple[str, str]]:
    """(id, what it keeps of which task) for every Gymnasium-based variant."""
    def where(keep):
        return str(list(keep)) if len(keep) < 4 else f"[{keep[0]}:{keep[-1] + 1}]"

    out = [(k, f"{v.base} obs{where(v.keep)}: {v.why}") for k, v in sorted(VARIANTS.items())]
    return out + [(k, f"{base}: target position (obs {list(hidden)}) on the first step only")
                  for k, (base, hidden) in sorted(FIRST_TARGET.items())]


def dmc_variant(env_id: str) -> tuple[str, str | None]:
    """``dmc:cartpole-swingup-P`` -> (``dmc:cartpole-swingup``, "P")."""
    for suffix in DMC_SUFFIXES:
        if env_id.endswith(suffix):
            return env_id[: -len(suffix)], suffix[1:]
    return env_id, None


def is_velocity_key(key: str) -> bool:
    """A dm_control key of velocities: ``velocity``, ``body_velocities``, ``arm_vel``,
    ``object_vel``, and the suite's own spelling ``joint_velocites``."""
    return "veloc" in key or key.endswith("_vel")


def observation_view(env_id: str) -> str:
    """Which part of its environment's observation an id shows: "" (all of it) or its
    variant's tag (P, V, FirstTarget). Ids contrl does not know (D4RL's names) show all."""
    if env_id in VARIANTS or env_id in FIRST_TARGET:
        return env_id.split("-")[1]
    return dmc_variant(env_id)[1] or ""


MIXED_DMC_KEYS = {
    "egocentric_state": (("quadruped",), "quadruped's joint angles, joint velocities and "
                                         "actuator states"),
    "imu": (("quadruped",), "quadruped's gyro and accelerometer"),
    "ball_state": (("quadruped", "dog"), "the ball's position, velocity and spin "
                                         "(quadruped-fetch, dog-fetch)"),
    "inertial_sensors": (("dog",), "dog's velocimeter, gyro and accelerometer"),
}
"""dm_control keys that hold positions and velocities together (the suite's domains that have
them, what they hold): no -P or -V view of their tasks can be made by key, so those variants
are refused, by id before anything is built."""


def check_dmc_variant(base: str, kind: str) -> None:
    """Refuse ``<base>-<kind>`` (``dmc:quadruped-walk``, "P") where the domain's keys mix
    positions and velocities."""
    domain = base.split(":", 1)[-1].split("-", 1)[0]
    mixed = [k for k, (domains, _) in MIXED_DMC_KEYS.items() if domain in domains]
    if mixed:
        raise ContrlError(f"{base}-{kind}: {domain}'s observation keys "
                          f"({', '.join(mixed)}) mix positions and "
                          f"velocities, so no {'velocities' if kind == 'V' else 'positions'}-only "
                          f"view is made by key; use {base} (fully observed) or another "
                          f"domain's -{kind}")


def dmc_keys_kept(keys, kind: str, env_id: str = "") -> tuple[str, ...]:
    """The dm_control observation keys a -P or -V variant keeps (refused where a key mixes
    positions and velocities)."""
    mixed = [k for k in keys if k in MIXED_DMC_KEYS]
    if mixed:
        raise ContrlError(f"{env_id}-{kind}: its observation key(s) {', '.join(mixed)} mix "
                          f"positions and velocities ({'; '.join(MIXED_DMC_KEYS[k][1] for k in mixed)}"
                          f"), so no {'velocities' if kind == 'V' else 'positions'}-only view "
                          f"is made by key; use {env_id} (fully observed) or another task's "
                          f"-{kind}")
    velocity = tuple(k for k in keys if is_velocity_key(k))
    return velocity if kind == "V" else tuple(k for k in keys if k not in velocity)


class KeepIndices(gym.ObservationWrapper):
    """Keep the listed observation indices (a positions-only or velocities-only view)."""

    def __init__(self, env: gym.Env, keep: tuple[int, ...]):
        super().__init__(env)
        n = env.observation_space.shape[0]
        if max(keep) >= n:
            raise ValueError(f"observation has {n} numbers; cannot keep index {max(keep)}")
        self.keep = np.asarray(keep)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (len(keep),), np.float32)

    def observation(self, obs):
        return np.asarray(obs, np.float32)[self.keep]


class FirstStepOnly(gym.Wrapper):
    """Show the listed observation entries on an episode's first observation only (zeros
    afterwards): the policy has to remember them."""

    def __init__(self, env: gym.Env, hidden: tuple[int, ...]):
        super().__init__(env)
        self.hidden = np.asarray(hidden)
        space = env.observation_space  # float32 like every observation this wrapper returns
        self.observation_space = gym.spaces.Box(space.low.astype(np.float32),
                                                space.high.astype(np.float32), dtype=np.float32)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return np.asarray(obs, np.float32), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs = np.array(obs, np.float32)
        obs[self.hidden] = 0.0
        return obs, reward, terminated, truncated, info


class PreviousActionReward(gym.Wrapper):
    """Append the previous action and/or reward to the observation (zeros on an episode's
    first step), as memory-based agents commonly take them as input."""

    def __init__(self, env: gym.Env, action: bool, reward: bool):
        super().__init__(env)
        self.with_action, self.with_reward = action, reward
        self.action_dim = env.action_space.shape[0]
        dim = env.observation_space.shape[0] + action * self.action_dim + reward
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def _extend(self, obs, action, reward):
        parts = [np.asarray(obs, np.float32).ravel()]
        if self.with_action:
            parts.append(np.asarray(action, np.float32).ravel())
        if self.with_reward:
            parts.append(np.asarray([reward], np.float32))
        return np.concatenate(parts)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._extend(obs, np.zeros(self.action_dim), 0.0), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        clipped = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        return self._extend(obs, clipped, reward), reward, terminated, truncated, info


class FrameStack(gym.Wrapper):
    """The last ``n`` observations concatenated, oldest first; before an episode's first
    step the missing ones are zeros. The stacked frames are part of the env state saved for
    resume (``wrapper_state``)."""

    def __init__(self, env: gym.Env, n: int):
        super().__init__(env)
        self.n = n
        self.dim = env.observation_space.shape[0]
        self.frames = np.zeros((n, self.dim), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (n * self.dim,), np.float32)

    def _push(self, obs):
        self.frames = np.concatenate([self.frames[1:], np.asarray(obs, np.float32)[None]])
        return self.frames.ravel().copy()

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.frames = np.zeros_like(self.frames)
        return self._push(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._push(obs), reward, terminated, truncated, info

    def wrapper_state(self) -> dict:
        return {"frames": self.frames.copy()}

    def load_wrapper_state(self, state: dict) -> None:
        self.frames = np.asarray(state["frames"], np.float32).copy()
