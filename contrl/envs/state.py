"""Capture and restore an environment's full state, so a resumed run continues mid-episode
exactly as if it had never stopped.

For MuJoCo envs the physics is saved with ``mj_getState(mjSTATE_INTEGRATION)`` (positions,
velocities, actuator state, warm-start accelerations, time); for others the simple attributes
of the base env (arrays and numbers, e.g. Pendulum's ``state``). Wrapper counters such as the
time limit's elapsed steps, and the env's random generator, are saved too.
"""
from __future__ import annotations

import copy
import numbers

import numpy as np

try:
    import mujoco
except ImportError:  # pragma: no cover - mujoco is a dependency
    mujoco = None

_WRAPPER_ATTRS = ("_elapsed_steps", "_has_reset")
_SIMPLE = (numbers.Number, np.ndarray, bool, type(None), tuple, str)


def _chain(env):
    while True:
        yield env
        if not hasattr(env, "env"):
            return
        env = env.env


def get_env_state(env) -> dict:
    wrappers = [{a: getattr(w, a) for a in _WRAPPER_ATTRS if hasattr(w, a)} for w in _chain(env)]
    base = env.unwrapped
    state = {"wrappers": wrappers, "np_random": copy.deepcopy(base.np_random.bit_generator.state)}
    if mujoco is not None and hasattr(base, "data") and isinstance(base.data, mujoco.MjData):
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buf = np.empty(mujoco.mj_stateSize(base.model, spec))
        mujoco.mj_getState(base.model, base.data, buf, spec)
        state["mujoco"] = buf
    else:
        state["attrs"] = {
            k: copy.deepcopy(v) for k, v in vars(base).items()
            if not k.startswith("__") and isinstance(v, _SIMPLE)
        }
    return state


def set_env_state(env, state: dict) -> None:
    for w, attrs in zip(_chain(env), state["wrappers"]):
        for k, v in attrs.items():
            setattr(w, k, v)
    base = env.unwrapped
    base.np_random.bit_generator.state = state["np_random"]
    if "mujoco" in state:
        mujoco.mj_setState(base.model, base.data, np.asarray(state["mujoco"]),
                           mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(base.model, base.data)
    else:
        for k, v in state["attrs"].items():
            setattr(base, k, copy.deepcopy(v))
