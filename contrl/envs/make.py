"""``make_env`` for Gymnasium ids, and a small pool of environments stepped in lockstep."""
from __future__ import annotations

import difflib
import warnings
from functools import lru_cache

import gymnasium as gym
import numpy as np

from contrl.envs.dmc import PREFIX, DMCEnv, dmc_ids
from contrl.envs.state import get_env_state, set_env_state
from contrl.errors import ContrlError, UnknownIdError

# Continuous-control classic-control tasks; every Gymnasium MuJoCo task is added from the registry.
_CLASSIC = ("Pendulum-v1", "MountainCarContinuous-v0")


def known_env_ids(dmc: bool = True) -> list[str]:
    """Gymnasium MuJoCo tasks (v4, v5), the continuous classic-control tasks and, with
    ``dmc``, the DeepMind Control Suite tasks as ``dmc:<domain>-<task>``."""
    ids = [
        k for k, spec in gym.registry.items()
        if isinstance(spec.entry_point, str) and "gymnasium.envs.mujoco" in spec.entry_point
        and k.endswith(("-v4", "-v5"))
    ]
    return sorted(ids) + list(_CLASSIC) + (dmc_ids() if dmc else [])


def resolve_env_id(env_id: str) -> str:
    """Return ``env_id`` if contrl knows it; otherwise raise naming the closest ids."""
    known = known_env_ids(dmc=env_id.startswith(PREFIX))
    if env_id in known:
        return env_id
    if env_id in gym.registry and not env_id.startswith(PREFIX):
        return env_id  # any other registered Gymnasium id; its action space is checked on make
    close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else "; see `contrl list`"
    raise UnknownIdError(f"unknown environment '{env_id}'{hint}")


class RescaleToUnit(gym.ActionWrapper):
    """The agent acts in [-1, 1]^n; this maps (and clips) actions to the env's Box bounds."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.action_space
        self._low = space.low.astype(np.float64)
        self._scale = (space.high.astype(np.float64) - self._low) / 2.0
        self._unit = bool(np.all(self._low == -1.0) and np.all(self._scale == 1.0))
        self.action_space = gym.spaces.Box(-1.0, 1.0, space.shape, np.float32)

    def action(self, action):
        clipped = np.minimum(np.maximum(action, -1.0), 1.0)  # (np.clip's dispatch is slower)
        if self._unit:  # most MuJoCo tasks already act in [-1, 1]
            return clipped.astype(np.float64)
        return self._low + (clipped + 1.0) * self._scale


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``n`` times, summing the rewards; stops at an episode end."""

    def __init__(self, env: gym.Env, n: int):
        super().__init__(env)
        self.n = n

    def step(self, action):
        total = 0.0
        for _ in range(self.n):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += reward
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


def make_env(env_id: str, action_repeat: int = 1) -> gym.Env:
    """An env with actions rescaled to [-1, 1] and flat observations: a Gymnasium id or
    ``dmc:<domain>-<task>``; ``action_repeat`` > 1 repeats each action."""
    env_id = resolve_env_id(env_id)
    if env_id.startswith(PREFIX):
        env = DMCEnv(env_id)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            env = gym.make(env_id)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ContrlError(
            f"{env_id} has a {type(env.action_space).__name__} action space; "
            "contrl needs continuous (Box) actions"
        )
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        raise ContrlError(f"{env_id}: contrl needs flat Box observations")
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    return RescaleToUnit(env)


@lru_cache(maxsize=None)
def _raw_spaces(env_id: str):
    env = make_env(env_id)
    spaces = env.env.observation_space, env.env.action_space
    env.close()
    return spaces


def raw_action_space(env_id: str) -> gym.spaces.Box:
    """The env's own action space (before contrl's rescaling to [-1, 1])."""
    return _raw_spaces(env_id)[1]


def raw_observation_space(env_id: str) -> gym.spaces.Box:
    return _raw_spaces(env_id)[0]


class EnvPool:
    """``n`` environments stepped in lockstep with explicit episode ends.

    Unlike Gymnasium's vector envs, ``step`` returns the real final observation of an
    episode as ``next_obs`` and leaves the reset to the caller (``reset_done``), so that
    termination, truncation and the final observation are never mixed up.
    """

    def __init__(self, env_id: str, n: int, seed: int, action_repeat: int = 1):
        self.envs = [make_env(env_id, action_repeat) for _ in range(n)]
        self.seed = seed
        self.obs_dim = self.envs[0].observation_space.shape[0]
        self.action_dim = self.envs[0].action_space.shape[0]
        self.obs = np.stack(
            [e.reset(seed=seed + i)[0] for i, e in enumerate(self.envs)]
        ).astype(np.float32)
        self.episode_return = np.zeros(n)
        self.episode_length = np.zeros(n, np.int64)

    @property
    def n(self) -> int:
        return len(self.envs)

    def step(self, actions: np.ndarray):
        """Step every env; returns (next_obs, reward, terminated, truncated)."""
        out = [env.step(a) for env, a in zip(self.envs, actions)]
        next_obs = np.stack([o[0] for o in out]).astype(np.float32)
        reward = np.array([o[1] for o in out], np.float32)
        terminated = np.array([o[2] for o in out], bool)
        truncated = np.array([o[3] for o in out], bool)
        self.episode_return += reward
        self.episode_length += 1
        return next_obs, reward, terminated, truncated

    def advance(self, next_obs: np.ndarray, done: np.ndarray) -> list[tuple[float, int]]:
        """Make ``next_obs`` current, resetting finished envs; returns their (return, length)."""
        finished = []
        obs = next_obs.copy()
        for i in np.flatnonzero(done):
            finished.append((float(self.episode_return[i]), int(self.episode_length[i])))
            obs[i] = self.envs[i].reset()[0]
            self.episode_return[i] = 0.0
            self.episode_length[i] = 0
        self.obs = obs
        return finished

    # exact state for resume
    def state(self) -> dict:
        return {
            "envs": [get_env_state(e) for e in self.envs],
            "obs": self.obs.copy(),
            "episode_return": self.episode_return.copy(),
            "episode_length": self.episode_length.copy(),
        }

    def load_state(self, state: dict) -> None:
        for env, s in zip(self.envs, state["envs"]):
            set_env_state(env, s)
        self.obs = np.asarray(state["obs"], np.float32)
        self.episode_return = np.asarray(state["episode_return"], np.float64)
        self.episode_length = np.asarray(state["episode_length"], np.int64)

    def close(self) -> None:
        for e in self.envs:
            e.close()
