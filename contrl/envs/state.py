"""Capture and restore an environment's full state, so a resumed run continues mid-episode
exactly as if it had never stopped.

Two parts, both always saved:

- the physics of MuJoCo envs (Gymnasium's, dm_control's, gymnasium-robotics'), with
  ``mj_getState(mjSTATE_INTEGRATION)`` (positions, velocities, actuator state, warm-start
  accelerations, time), plus the model arrays that tasks change at each episode's start
  (``MODEL_ARRAYS``: goal sites, dm_control's targets as geoms or bodies, point_mass-hard's
  tendon wraps, quadruped-escape's terrain);
- the Python-side state: the simple attributes of the base env (arrays, numbers, strings: e.g.
  Pendulum's ``state``, a maze's ``goal`` and ``reset_pos``) and of the Gymnasium envs it
  holds inside (AntMaze's ant), and the random generators of all of them.

Wrapper counters such as the time limit's elapsed steps are saved too, and the state of any
wrapper that has ``wrapper_state()`` / ``load_wrapper_state(state)`` (e.g. stacked frames).
"""
from __future__ import annotations

import copy
import numbers

import gymnasium as gym
import numpy as np

try:
    import mujoco
except ImportError:  # pragma: no cover - mujoco is a dependency
    mujoco = None

_WRAPPER_ATTRS = ("_elapsed_steps", "_has_reset")
# model arrays that envs rewrite when an episode starts: gymnasium-robotics' goal sites;
# dm_control's reacher/fish/swimmer targets (geoms, a light), manipulator/stacker objects
# (bodies), point_mass-hard's wraps, quadruped-escape's height field
MODEL_ARRAYS = ("site_pos", "site_size", "geom_pos", "geom_quat", "geom_size", "geom_rgba",
                "body_pos", "body_quat", "wrap_prm", "light_pos", "light_dir", "hfield_data")
_SIMPLE = (numbers.Number, np.ndarray, bool, type(None), tuple, str)


def _chain(env):
    while True:
        yield env
        if not hasattr(env, "env"):
            return
        env = env.env


def _mujoco_handles(base):
    """(MjModel, MjData) of a Gymnasium MuJoCo env or of a DMCEnv, else None."""
    if mujoco is None:
        return None
    if hasattr(base, "mj_data"):
        return base.mj_model, base.mj_data
    if isinstance(getattr(base, "data", None), mujoco.MjData):
        return base.model, base.data
    return None


def _simple_attrs(obj) -> dict:
    return {k: copy.deepcopy(v) for k, v in vars(obj).items()
            if not k.startswith("__") and isinstance(v, _SIMPLE)}


def _inner_envs(base) -> dict:
    """Gymnasium envs held as attributes of the base env (e.g. AntMaze's ``ant_env``)."""
    return {k: v for k, v in vars(base).items() if isinstance(v, gym.Env)}


def get_env_state(env) -> dict:
    wrappers = [{a: getattr(w, a) for a in _WRAPPER_ATTRS if hasattr(w, a)} for w in _chain(env)]
    for saved, w in zip(wrappers, _chain(env)):
        if hasattr(w, "wrapper_state"):
            saved["wrapper_state"] = w.wrapper_state()
    base = env.unwrapped
    state = {"wrappers": wrappers, "np_random": copy.deepcopy(base.np_random.bit_generator.state),
             "attrs": _simple_attrs(base),
             "inner": {k: {"attrs": _simple_attrs(e),
                           "np_random": copy.deepcopy(e.np_random.bit_generator.state)}
                       for k, e in _inner_envs(base).items()}}
    handles = _mujoco_handles(base)
    if hasattr(base, "extra_state"):
        state["extra"] = base.extra_state()
    if handles is not None:
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buf = np.empty(mujoco.mj_stateSize(handles[0], spec))
        mujoco.mj_getState(*handles, buf, spec)
        state["mujoco"] = buf
        state["model"] = {k: np.array(getattr(handles[0], k)) for k in MODEL_ARRAYS}
    return state


def set_env_state(env, state: dict) -> None:
    for w, attrs in zip(_chain(env), state["wrappers"]):
        for k, v in attrs.items():
            if k == "wrapper_state":
                w.load_wrapper_state(v)
            else:
                setattr(w, k, v)
    base = env.unwrapped
    base.np_random.bit_generator.state = state["np_random"]
    for k, v in state.get("attrs", {}).items():
        setattr(base, k, copy.deepcopy(v))
    inner = _inner_envs(base)
    for name, saved in state.get("inner", {}).items():
        for k, v in saved["attrs"].items():
            setattr(inner[name], k, copy.deepcopy(v))
        inner[name].np_random.bit_generator.state = saved["np_random"]
    if "extra" in state:
        base.load_extra_state(state["extra"])
    if "mujoco" in state:
        model, data = _mujoco_handles(base)
        mujoco.mj_setState(model, data, np.asarray(state["mujoco"]),
                           mujoco.mjtState.mjSTATE_INTEGRATION)
        saved = state.get("model", {})
        if "site_pos" in state:  # checkpoints before session 38 saved the sites only
            saved = {"site_pos": state["site_pos"]}
        for k, v in saved.items():
            getattr(model, k)[:] = np.asarray(v).reshape(getattr(model, k).shape)
        mujoco.mj_forward(model, data)
