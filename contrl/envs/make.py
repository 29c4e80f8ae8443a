"""``make_env`` for Gymnasium ids, and a small pool of environments stepped in lockstep."""
from __future__ import annotations

import contextlib
import difflib
import io
import math
import warnings
from functools import lru_cache
from typing import NamedTuple

import gymnasium as gym
import numpy as np

from contrl.envs import antgoal
from contrl.envs.dmc import PREFIX, DMCEnv, dmc_ids
from contrl.envs.maze import MAZE_EVAL_EPISODES, is_maze
from contrl.envs.pomdp import (FIRST_TARGET, VARIANTS, FirstStepOnly, FrameStack, KeepIndices,
                               PreviousActionReward, check_dmc_variant, dmc_variant,
                               pomdp_ids)
from contrl.envs.state import get_env_state, set_env_state
from contrl.errors import ContrlError, UnknownIdError

# Continuous-control classic-control tasks; every Gymnasium MuJoCo task is added from the registry.
_CLASSIC = ("Pendulum-v1", "MountainCarContinuous-v0")
# Info keys through which an env reports that an episode reached its goal.
SUCCESS_KEYS = ("is_success", "success")
# D4RL's antmaze-umaze task: the U maze with one start ('r', bottom left) and one goal ('g', top
# left) instead of gymnasium-robotics' random free cells for both (AntMaze_UMaze-v5).
UMAZE_FIXED = "AntMaze_UMaze_Fixed-v5"


def _fixed_map(base: list, start: tuple[int, int], goal: tuple[int, int]) -> list:
    """``base`` with every cell's mark cleared and 'r' at ``start``, 'g' at ``goal``."""
    rows = [[1 if v == 1 else 0 for v in row] for row in base]
    rows[start[0]][start[1]], rows[goal[0]][goal[1]] = "r", "g"
    return rows


# D4RL's evaluation tasks: one start cell, one goal cell (the goal point still gets the env's
# noise within its cell), D4RL's episode lengths; the _Fixed mazes with Gymnasium's ant, the
# _D4RL ones with D4RL's (contrl.envs.antgoal.ANT_MODELS: 30 N m motors, 0.1 s per step).
# id: (gymnasium-robotics id, start, goal, steps, ant model)
FIXED_MAZES = {
    UMAZE_FIXED: ("AntMaze_UMaze-v5", (3, 1), (1, 1), 700, "gymnasium"),
    "AntMaze_Medium_Fixed-v5": ("AntMaze_Medium-v5", (1, 1), (6, 6), 1000, "gymnasium"),
    "AntMaze_Large_Fixed-v5": ("AntMaze_Large-v5", (1, 1), (7, 9), 1000, "gymnasium"),
    "AntMaze_UMaze_D4RL-v5": ("AntMaze_UMaze-v5", (3, 1), (1, 1), 700, "d4rl"),
    "AntMaze_Medium_D4RL-v5": ("AntMaze_Medium-v5", (1, 1), (6, 6), 1000, "d4rl"),
    "AntMaze_Large_D4RL-v5": ("AntMaze_Large-v5", (1, 1), (7, 9), 1000, "d4rl"),
}


def ant_model(env_id: str) -> str | None:
    """The ant model (a key of ``antgoal.ANT_MODELS``) of an AntGoal or AntMaze env; None for
    an env without contrl's ant."""
    if env_id in antgoal.REACHER_ANT:
        return antgoal.REACHER_ANT[env_id]
    if env_id in FIXED_MAZES:
        return FIXED_MAZES[env_id][4]
    return "gymnasium" if env_id.startswith("AntMaze_") else None


@lru_cache(maxsize=None)
def _register_robotics() -> bool:
    """Register gymnasium-robotics' envs (the mazes) with Gymnasium, once. Its import prints a
    notice about Adroit reward versions; that is kept out of contrl's output."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import gymnasium_robotics
            gym.register_envs(gymnasium_robotics)
    except ImportError:  # pragma: no cover - gymnasium-robotics is a dependency
        return False
    for env_id, (base_id, start, goal, steps, ant) in FIXED_MAZES.items():
        if env_id not in gym.registry:
            base = gym.spec(base_id)
            gym.register(env_id, entry_point=base.entry_point, max_episode_steps=steps,
                         kwargs={**base.kwargs, "xml_file": antgoal.ant_xml(ant),
                                 "maze_map": _fixed_map(base.kwargs["maze_map"], start, goal)})
    return True


def default_eval_episodes(env_id: str) -> int:
    """Evaluation episodes unless the config says: 100 on mazes (a success rate), else 10."""
    return MAZE_EVAL_EPISODES if is_maze(env_id) else 10


def known_env_ids(dmc: bool = True) -> list[str]:
    """Gymnasium MuJoCo tasks (v4, v5), gymnasium-robotics' AntMaze and PointMaze tasks (their
    newest version, and the ``_Fixed-v5`` and ``_D4RL-v5`` mazes of ``FIXED_MAZES``), contrl's
    own tasks (``AntGoal-v1``, ``-v2``, ``-v3``), the continuous classic-control tasks and,
    with ``dmc``, the DeepMind Control Suite tasks as ``dmc:<domain>-<task>``."""
    _register_robotics()
    antgoal.register()
    ids = [
        k for k, spec in gym.registry.items()
        if isinstance(spec.entry_point, str) and "gymnasium.envs.mujoco" in spec.entry_point
        and k.endswith(("-v4", "-v5"))
    ]
    newest: dict[str, tuple[int, str]] = {}
    for k in gym.registry:
        if is_maze(k):
            name, _, version = k.rpartition("-v")
            newest[name] = max(newest.get(name, (-1, "")), (int(version), k))
    mazes = sorted(k for _, k in newest.values())
    return (sorted(ids) + mazes + list(antgoal.ENV_IDS) + list(_CLASSIC) + pomdp_ids()
            + (dmc_ids() if dmc else []))


def default_obs_keys(env_id: str) -> tuple[str, ...]:
    """The key order in which a dict observation is flattened unless the config names one:
    observation + desired_goal; AntMaze keeps the ant's x-y position only in achieved_goal, so
    there it comes in between (the policy must know where the ant is)."""
    if env_id.startswith("AntMaze_"):
        return ("observation", "achieved_goal", "desired_goal")
    return ("observation", "desired_goal")


def resolve_env_id(env_id: str) -> str:
    """Return ``env_id`` if contrl knows it; otherwise raise naming the closest ids."""
    known = known_env_ids(dmc=env_id.startswith(PREFIX))
    if env_id in known:
        return env_id
    base, kind = dmc_variant(env_id)
    if env_id.startswith(PREFIX) and kind and base in known:  # dmc:<domain>-<task>-P / -V
        check_dmc_variant(base, kind)
        return env_id
    if env_id in gym.registry and not env_id.startswith(PREFIX) and not is_maze(env_id):
        entry = str(gym.registry[env_id].entry_point)
        if entry.endswith("JaxEnv"):  # phys2d/*, tabular/*: functional envs of JAX arrays
            raise ContrlError(f"{env_id} is one of Gymnasium's functional JAX envs ({entry}), "
                              "which contrl does not step; use a NumPy env (`contrl list`)")
        return env_id  # any other registered Gymnasium id; its action space is checked on make
    close = difflib.get_close_matches(env_id, known, n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else "; see `contrl list`"
    raise UnknownIdError(f"unknown environment '{env_id}'{hint}")


class RescaleToUnit(gym.ActionWrapper):
    """The agent acts in [-1, 1]^n; this maps (and clips) actions to the env's Box bounds."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        space = env.action_space
        if not (np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            raise ContrlError(f"{env.spec.id if env.spec else env}'s action bounds are not "
                              "finite: contrl's agents act in [-1, 1], scaled to the bounds")
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
    """Repeat each action ``n`` times, summing the rewards; stops at an episode end. The info
    is the last repeat's, its success (goal envs) true if any repeat's was: a goal reached in
    an earlier repeat counts even where the env has since moved the goal on (AntGoal)."""

    def __init__(self, env: gym.Env, n: int):
        super().__init__(env)
        self.n = n

    def step(self, action):
        total, reached = 0.0, {}
        for _ in range(self.n):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += reward
            reached.update((k, True) for k in SUCCESS_KEYS if info.get(k))
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, {**info, **reached} if reached else info


class FlattenDict(gym.ObservationWrapper):
    """A dict observation as one float32 vector: the named keys' arrays, flattened and
    concatenated in the given order."""

    def __init__(self, env: gym.Env, keys: tuple[str, ...]):
        super().__init__(env)
        space = env.observation_space
        missing = [k for k in keys if k not in space.spaces]
        if missing or not keys:
            raise ContrlError(f"{env.spec.id if env.spec else env}: observation keys "
                              f"{', '.join(missing) or '(none)'} not among its keys "
                              f"{', '.join(space.spaces)} (set --obs-keys)")
        bad = [k for k in keys if not isinstance(space.spaces[k], gym.spaces.Box)]
        if bad:
            raise ContrlError(f"observation keys {', '.join(bad)} are not arrays")
        self.keys = tuple(keys)
        dim = sum(int(np.prod(space.spaces[k].shape)) for k in keys)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)

    def observation(self, obs):
        return np.concatenate([np.asarray(obs[k], np.float32).ravel() for k in self.keys])


def _make_base(env_id: str, render_size: tuple[int, int] | None = None) -> gym.Env:
    """The env of an id, partial observability (``contrl.envs.pomdp``) included;
    ``render_size`` (height, width): made to render RGB frames of that size."""
    if env_id.startswith(PREFIX):
        base_id, kind = dmc_variant(env_id)
        return DMCEnv(base_id, kind, render_size)
    kwargs, wrap = {}, None
    if env_id in VARIANTS:
        variant = VARIANTS[env_id]
        env_id, kwargs = variant.base, dict(variant.make_kwargs)
        wrap = lambda e: KeepIndices(e, variant.keep)  # noqa: E731
    elif env_id in FIRST_TARGET:
        env_id, hidden = FIRST_TARGET[env_id]
        wrap = lambda e: FirstStepOnly(e, hidden)  # noqa: E731
    elif env_id.startswith("AntMaze_"):
        # The ant's 27 numbers as D4RL's AntMaze gave them: no contact forces (78 more).
        kwargs["include_cfrc_ext_in_observation"] = False
    if render_size is not None:
        entry = str(gym.spec(env_id).entry_point)
        if "mujoco" not in entry and "gymnasium_robotics" not in entry and "antgoal" not in entry:
            raise ContrlError(f"{env_id} is not rendered by MuJoCo; videos cover Gymnasium "
                              "MuJoCo, dm_control and maze envs")
        kwargs.update(render_mode="rgb_array", height=render_size[0], width=render_size[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            env = gym.make(env_id, **kwargs)
        except (ImportError, gym.error.Error) as e:  # e.g. Hopper-v3 (mujoco-py), Box2D ids
            raise UnknownIdError(_unmakeable(env_id, e)) from None
    return wrap(env) if wrap else env


def _unmakeable(env_id: str, error: Exception) -> str:
    """One line for a registered Gymnasium id that cannot be made here (an old MuJoCo version
    needing mujoco-py, an env whose extra is not installed), naming the ids contrl can make."""
    first = error.args[0] if error.args and isinstance(error.args[0], str) else str(error)
    reason = (first.strip() or type(error).__name__).splitlines()[0][:160]  # not a tuple's repr
    name = env_id.rpartition("-v")[0]
    newer = sorted((k for k in known_env_ids(dmc=False)
                    if k.rpartition("-v")[0] == name and k != env_id), reverse=True)
    hint = (f"use {', '.join(newer)}" if newer else
            "see `contrl list` for the envs contrl makes")
    return f"environment '{env_id}' cannot be made here ({reason}); {hint}"


def make_env(env_id: str, action_repeat: int = 1, obs_keys: tuple[str, ...] = (),
             frame_stack: int = 1, prev_action: bool = False,
             prev_reward: bool = False, render_size: tuple[int, int] | None = None) -> gym.Env:
    """An env with actions rescaled to [-1, 1] and flat observations: a Gymnasium id,
    ``dmc:<domain>-<task>`` or a partially observed variant (``contrl.envs.pomdp``);
    ``action_repeat`` > 1 repeats each action. A dict observation is flattened in the order
    ``obs_keys`` (default: ``default_obs_keys``). ``prev_action`` / ``prev_reward`` append the
    previous action (in [-1, 1]) and reward; ``frame_stack`` > 1 then stacks the last
    ``frame_stack`` observations. ``render_size`` (height, width): ``env.render()`` returns
    RGB frames of that size."""
    env_id = resolve_env_id(env_id)
    env = _make_base(env_id, render_size)
    if not isinstance(env.action_space, gym.spaces.Box):
        raise ContrlError(
            f"{env_id} has a {type(env.action_space).__name__} action space; "
            "contrl needs continuous (Box) actions"
        )
    if isinstance(env.observation_space, gym.spaces.Dict):
        env = FlattenDict(env, tuple(obs_keys) or default_obs_keys(env_id))
    if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
        raise ContrlError(f"{env_id}: contrl needs flat Box (or dict of Box) observations")
    if action_repeat > 1:
        env = ActionRepeat(env, action_repeat)
    env = RescaleToUnit(env)
    if prev_action or prev_reward:
        env = PreviousActionReward(env, prev_action, prev_reward)
    if frame_stack > 1:
        env = FrameStack(env, frame_stack)
    return env


@lru_cache(maxsize=None)
def _raw_spaces(env_id: str):
    env = make_env(env_id)
    inner = env.env.env if isinstance(env.env, FlattenDict) else env.env
    spaces = inner.observation_space, inner.action_space
    env.close()
    return spaces


def has_dict_observations(env_id: str) -> bool:
    return isinstance(raw_observation_space(env_id), gym.spaces.Dict)


def flattening_keys(env_id: str, given=()) -> tuple[str, ...]:
    """The keys, in order, that an env's dict observations are flattened by: those
    ``given``, else ``default_obs_keys``; none for an env with flat observations."""
    if given:
        return tuple(given)
    return default_obs_keys(env_id) if has_dict_observations(env_id) else ()


def raw_action_space(env_id: str) -> gym.spaces.Box:
    """The env's own action space (before contrl's rescaling to [-1, 1])."""
    return _raw_spaces(env_id)[1]


def raw_observation_space(env_id: str) -> gym.spaces.Box:
    return _raw_spaces(env_id)[0]


def info_success(info: dict) -> bool | None:
    """Whether a step's info says the goal is reached (None: the env does not say)."""
    for key in SUCCESS_KEYS:
        if key in info:
            return bool(info[key])
    return None


def time_limit(env: gym.Env) -> int | None:
    """An env's time limit in env steps (None if it has none): gymnasium's from its spec,
    dm_control's from its task's step limit."""
    limit = env.spec.max_episode_steps if env.spec is not None else None
    if limit is None:  # a dm_control task's step limit (inf: none)
        step_limit = getattr(getattr(env.unwrapped, "_env", None), "_step_limit", None)
        limit = math.ceil(step_limit) if step_limit and np.isfinite(step_limit) else None
    return limit


def reports_success(env_id: str, **env_kwargs) -> bool:
    """Whether an env's steps say if the goal is reached (one random step of a fresh env;
    asked once per env and options, e.g. for all the seeds of a vmapped group)."""
    return _reports_success(env_id, tuple(sorted(env_kwargs.items())))


@lru_cache(maxsize=None)
def _reports_success(env_id: str, env_kwargs: tuple) -> bool:
    env = make_env(env_id, **dict(env_kwargs))
    try:
        env.reset(seed=0)
        info = env.step(env.action_space.sample())[4]
    finally:
        env.close()
    return info_success(info) is not None


class Episode(NamedTuple):
    """A finished episode: undiscounted return, length, and whether it reached its goal at
    any step (None for envs that do not report success)."""

    ret: float
    length: int
    success: bool | None = None


class EnvPool:
    """``n`` environments stepped in lockstep with explicit episode ends.

    Unlike Gymnasium's vector envs, ``step`` returns the real final observation of an
    episode as ``next_obs`` and leaves the reset to the caller (``advance``), so that
    termination, truncation and the final observation are never mixed up. Envs that report
    success in their step info (``is_success`` or ``success``) have it kept per episode.
    """

    def __init__(self, env_id: str, n: int, seed: int, **env_kwargs):
        """``env_kwargs``: how each env is made (``make_env``'s keyword arguments)."""
        self.envs = [make_env(env_id, **env_kwargs) for _ in range(n)]
        self.seed = seed
        self.action_repeat = env_kwargs.get("action_repeat", 1)  # env steps per agent step
        self.obs_dim = self.envs[0].observation_space.shape[0]
        self.action_dim = self.envs[0].action_space.shape[0]
        self.obs = np.stack(
            [e.reset(seed=seed + i)[0] for i, e in enumerate(self.envs)]
        ).astype(np.float32)
        self.episode_return = np.zeros(n)
        self.episode_length = np.zeros(n, np.int64)
        self.episode_success = np.zeros(n, bool)
        self.reports_success = False

    @property
    def n(self) -> int:
        return len(self.envs)

    @property
    def episode_limit(self) -> int | None:
        """The env's time limit in agent steps (None if it has none): an agent step is
        ``action_repeat`` env steps."""
        limit = time_limit(self.envs[0])
        return -(-limit // self.action_repeat) if limit else None

    def step(self, actions: np.ndarray):
        """Step every env; returns (next_obs, reward, terminated, truncated)."""
        out = [env.step(a) for env, a in zip(self.envs, actions)]
        next_obs = np.stack([o[0] for o in out]).astype(np.float32)
        reward = np.array([o[1] for o in out], np.float32)
        terminated = np.array([o[2] for o in out], bool)
        truncated = np.array([o[3] for o in out], bool)
        for i, o in enumerate(out):
            self.record_success(i, o[4])
        self.episode_return += reward
        self.episode_length += 1
        return next_obs, reward, terminated, truncated

    def record_success(self, i: int, info: dict) -> bool:
        """Note what env ``i``'s step info says about reaching the goal; returns whether this
        step reached it."""
        success = info_success(info)
        if success is None:
            return False
        self.reports_success = True
        self.episode_success[i] |= success
        return bool(success)

    def advance(self, next_obs: np.ndarray, done: np.ndarray) -> list[Episode]:
        """Make ``next_obs`` current, resetting finished envs; returns their episodes."""
        finished = []
        obs = next_obs.copy()
        for i in np.flatnonzero(done):
            finished.append(Episode(float(self.episode_return[i]), int(self.episode_length[i]),
                                    bool(self.episode_success[i]) if self.reports_success
                                    else None))
            obs[i] = self.envs[i].reset()[0]
            self.episode_return[i] = 0.0
            self.episode_length[i] = 0
            self.episode_success[i] = False
        self.obs = obs
        return finished

    # exact state for resume
    def state(self) -> dict:
        return {
            "envs": [get_env_state(e) for e in self.envs],
            "obs": self.obs.copy(),
            "episode_return": self.episode_return.copy(),
            "episode_length": self.episode_length.copy(),
            "episode_success": self.episode_success.copy(),
            "reports_success": self.reports_success,
        }

    def load_state(self, state: dict) -> None:
        for env, s in zip(self.envs, state["envs"]):
            set_env_state(env, s)
        self.obs = np.asarray(state["obs"], np.float32)
        self.episode_return = np.asarray(state["episode_return"], np.float64)
        self.episode_length = np.asarray(state["episode_length"], np.int64)
        self.episode_success = np.asarray(state.get("episode_success", self.episode_success), bool)
        self.reports_success = bool(state.get("reports_success", False))

    def close(self) -> None:
        for e in self.envs:
            e.close()
