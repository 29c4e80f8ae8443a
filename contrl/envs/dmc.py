"""DeepMind Control Suite tasks as Gymnasium envs: ``dmc:<domain>-<task>``.

Observations are the task's observation dict flattened in a fixed (sorted) key order; the
episode's step limit is reported as a truncation, never as a termination (a termination is a
last step with discount 0); seeding goes through the task's random state.
"""
from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np

from contrl.envs.pomdp import dmc_keys_kept
from contrl.errors import ContrlError

PREFIX = "dmc:"


def _suite():
    with warnings.catch_warnings():  # dm_control warns when no display is found for rendering
        warnings.simplefilter("ignore")
        from dm_control import suite
    return suite


def dmc_ids() -> list[str]:
    return [f"{PREFIX}{d}-{t}" for d, t in sorted(_suite().ALL_TASKS)]


def parse(env_id: str) -> tuple[str, str]:
    domain, _, task = env_id[len(PREFIX):].partition("-")
    return domain, task


class DMCEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, env_id: str, kind: str | None = None,
                 render_size: tuple[int, int] | None = None):
        """``kind`` "P" or "V": keep only the position-like or the velocity observation keys
        (``contrl.envs.pomdp.dmc_keys_kept``). ``render_size`` (height, width): ``render()``
        returns RGB frames of that size from the task's first camera."""
        self.env_id = env_id
        self.render_size = render_size
        self.render_mode = "rgb_array" if render_size else None
        self.domain, self.task = parse(env_id)
        self._load(seed=None)
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(spec.minimum.astype(np.float32),
                                           spec.maximum.astype(np.float32), dtype=np.float32)
        obs_spec = self._env.observation_spec()
        self._keys = sorted(obs_spec)  # fixed flattening order, decided once
        if kind is not None:
            self._keys = list(dmc_keys_kept(self._keys, kind, env_id))
            if not self._keys:
                raise ContrlError(f"{env_id}-{kind}: the task has no such observation keys "
                                  f"(it has {', '.join(sorted(obs_spec))})")
        dim = sum(int(np.prod(obs_spec[k].shape)) for k in self._keys)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def _load(self, seed):
        self._env = _suite().load(self.domain, self.task, task_kwargs={"random": seed})
        if self.render_size is not None:  # the offscreen buffer (640x480 in most tasks) must hold a frame
            vis = self._env.physics.model.vis.global_
            vis.offheight = max(int(vis.offheight), self.render_size[0])
            vis.offwidth = max(int(vis.offwidth), self.render_size[1])

    def _flat(self, obs: dict) -> np.ndarray:
        return np.concatenate([np.asarray(obs[k], np.float32).ravel() for k in self._keys])

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._load(seed)
        return self._flat(self._env.reset().observation), {}

    def step(self, action):
        ts = self._env.step(action)
        terminated = ts.last() and ts.discount == 0.0
        truncated = ts.last() and not terminated
        return self._flat(ts.observation), float(ts.reward or 0.0), terminated, truncated, {}

    def render(self):
        if self.render_size is None:
            return None
        height, width = self.render_size
        return self._env.physics.render(height=height, width=width, camera_id=0)

    # exact state (see contrl.envs.state)
    @property
    def mj_model(self):
        return self._env.physics.model.ptr

    @property
    def mj_data(self):
        return self._env.physics.data.ptr

    def extra_state(self) -> dict:
        kind, keys, pos, has_gauss, gauss = self._env.task.random.get_state()
        return {"random": [kind, keys, pos, has_gauss, gauss],
                "step_count": self._env._step_count, "reset_next": self._env._reset_next_step}

    def load_extra_state(self, state: dict) -> None:
        kind, keys, pos, has_gauss, gauss = state["random"]
        self._env.task.random.set_state((kind, np.asarray(keys, np.uint32), int(pos),
                                         int(has_gauss), float(gauss)))
        self._env._step_count = int(state["step_count"])
        self._env._reset_next_step = bool(state["reset_next"])
