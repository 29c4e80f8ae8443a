"""Typed configuration: dataclasses whose fields carry one docstring each.

The command line is generated from these classes (see ``contrl.cli``), and per-environment
presets are plain data in ``contrl/presets/<algo>.toml``.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import numbers
import textwrap
import tomllib
import types
import typing
from functools import lru_cache
from pathlib import Path

import numpy as np

from contrl import seeding

PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(ValueError):
    """An invalid configuration value, reported before anything starts."""


class _Checks:
    """Small validators shared by all config classes."""

    RETIRED: typing.ClassVar[tuple[str, ...]] = ()
    """Fields removed from the class that configs saved by older versions may still hold;
    reading such a config drops them."""
    FORMER_DEFAULTS: typing.ClassVar[dict] = {}
    """Fields added with a default other than the behaviour before them: a saved config
    without the field (a run from before it) reads as this value, so it resumes, evaluates and
    reports as it was trained."""

    def _positive(self, *names: str) -> None:
        for n in names:
            if not getattr(self, n) > 0:
                raise ConfigError(f"{n} must be positive, got {getattr(self, n)}")

    def _nonneg(self, *names: str) -> None:
        for n in names:
            if getattr(self, n) < 0:
                raise ConfigError(f"{n} must be >= 0, got {getattr(self, n)}")

    def _widths(self, name: str, allow_empty: bool = False) -> None:
        """A tuple of hidden layer widths: all positive (and not empty unless allowed)."""
        v = getattr(self, name)
        if (not v and not allow_empty) or (v and min(v) <= 0):
            raise ConfigError(f"{name} must be positive layer widths, got {v}")

    def _one_of(self, name: str, choices: tuple[str, ...]) -> None:
        v = getattr(self, name)
        if v not in choices:
            options = (" or ".join(choices) if len(choices) == 2
                       else "one of " + ", ".join(choices))
            raise ConfigError(f"{name} must be {options}, got '{v}'")

    def _in_range(self, name: str, low: float, high: float, low_open: bool = False) -> None:
        v = getattr(self, name)
        if v > high or v < low or (low_open and v == low):
            bracket = "(" if low_open else "["
            raise ConfigError(f"{name} must be in {bracket}{low}, {high}], got {v}")

    def validate(self) -> None:
        """Raise ConfigError on an invalid value. Subclasses extend this."""


def resolved_path(value: str) -> str:
    """``value`` made absolute if it names an existing file or directory, else unchanged
    (a dataset id looked up elsewhere, or an empty option)."""
    return str(Path(value).resolve()) if value and Path(value).exists() else value


@dataclasses.dataclass
class AlgoConfig(_Checks):
    """Base class of every algorithm's hyperparameters."""

    LOOP_FIELDS: typing.ClassVar[tuple[str, ...]] = ()
    """Fields only the training loop reads (batch size, warm-up, dataset, ...): agents built
    from configs that differ in these alone are the same, so they share compiled code."""

    PATH_FIELDS: typing.ClassVar[tuple[str, ...]] = ()
    """Fields naming a file or a directory (a dataset, a run): see ``resolve_paths``."""

    def resolve_paths(self) -> None:
        """Record each PATH_FIELDS value that names an existing path as that path made
        absolute, so config.json names the same thing from any working directory (a resume,
        a report, a reused model). Other values (a Minari id) are kept as given."""
        for name in self.PATH_FIELDS:
            setattr(self, name, resolved_path(getattr(self, name)))

    def record_sources(self, given: set[str]) -> None:
        """Fill, for config.json, fields not ``given`` by the user whose true value comes from
        a file this config names (e.g. how a reused model was fitted). None by default."""

    def build_key(self) -> str:
        """What an agent built from this config depends on (all fields but LOOP_FIELDS)."""
        return repr((type(self).__name__, [(f.name, getattr(self, f.name))
                                           for f in dataclasses.fields(self)
                                           if f.name not in self.LOOP_FIELDS]))

    def check_run(self, run: "RunConfig") -> None:
        """Raise ConfigError where this config cannot work with the run's settings."""

    def check_dataset(self, dataset) -> None:
        """Refuse a dataset (an offline run's, or offline_ratio's) these agents cannot learn
        from; called once it is loaded, before anything is built."""

    def check_new_run(self, run: "RunConfig") -> None:
        """Checks for a new run only (a resumed run keeps what it was started with)."""

    def check_given(self, given: dict) -> None:
        """Checks of the values a user set for a new run (``given``: not the preset's or the
        defaults), e.g. settings this run would not use."""

    @classmethod
    def resume_blocker(cls, saved: dict) -> str | None:
        """Why a run saved with the config ``saved`` (as read from its config.json, RETIRED
        fields included) cannot be resumed by this version, if it cannot."""
        return None


def flags(names) -> str:
    """Config field names as the CLI's flags, for messages: "--baseline-steps, --gae-lambda"."""
    return ", ".join("--" + n.replace("_", "-") for n in names)


def check_seed(seed: int) -> None:
    """A seed must fit JAX's PRNG keys, which are made from a uint32."""
    if not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be in [0, 2**32), got {seed}")


@dataclasses.dataclass
class RunConfig(_Checks):
    """What every training run has, whatever the algorithm."""

    env: str = "Pendulum-v1"
    """Environment id: a Gymnasium id (e.g. HalfCheetah-v5) or dmc:<domain>-<task>."""
    seed: int = 0
    """Random seed of the agent, the environment and the replay sampling."""
    seed_streams: str = "hashed"
    """How the run's random streams (replay draws, warm-up actions, dataset batches, training
    and evaluation envs) derive from its seed: hashed (independent per purpose and per seed) or
    offset (seed, seed + 1, ...; evaluation episode i seeded seed + 100000 + i, so neighbouring
    seeds shared most evaluation episodes: how runs made before 2026-12-07 drew, which read as
    offset)."""
    steps: int = 1_000_000
    """Total steps to train for: environment steps for online algorithms, gradient steps for
    offline ones (bc, iql, cql, td3bc, mopo; an online phase counts online_steps env steps),
    expert labels for dagger."""
    num_envs: int = 1
    """Environments stepped in lockstep; each loop iteration adds num_envs transitions."""
    action_repeat: int = 1
    """Repeat each action this many times (rewards summed); steps count agent decisions."""
    eval_every: int = 10_000
    """Env steps between evaluations (0: only at the end)."""
    eval_episodes: int | None = None
    """Deterministic episodes per evaluation, on a separate env instance. Empty: 100 on the
    mazes (AntMaze_*, PointMaze_*: a success rate needs many episodes), 10 on other envs; the
    number used is written into config.json."""
    checkpoint_every: int = 50_000
    """Env steps between full checkpoints (agent + replay buffer); one is also written at the
    end and when the run is interrupted."""
    log_every: int = 1_000
    """Env steps between rows of training losses in progress.csv."""
    runs_dir: str = "runs"
    """Directory in which the run directory is created."""
    tensorboard: bool = True
    """Write TensorBoard event files."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the wandb package)."""
    progress: bool = True
    """Show a progress bar."""
    stop_at_return: float | None = None
    """Stop (with a full checkpoint, replay buffer included) once an evaluation's mean return
    reaches this; e.g. to keep a "medium" policy and its buffer for an offline dataset."""
    obs_keys: tuple[str, ...] = ()
    """Envs with dict observations (goal-reaching tasks): the keys flattened into the policy's
    input, in this order. Empty: observation + desired_goal (AntMaze: observation +
    achieved_goal + desired_goal, as its observation key lacks the ant's position); the order
    used is written into config.json."""
    frame_stack: int = 1
    """Observations the policy sees at once: the last frame_stack observations concatenated
    (zeros before the episode's start); 1: the current one only."""
    prev_action: bool = False
    """Append the previous action (in [-1, 1], zeros on the first step) to the observation."""
    prev_reward: bool = False
    """Append the previous reward (0 on the first step) to the observation."""
    video_every: int = 0
    """Env steps between videos of the deterministic policy (one episode, MP4 in videos/, a
    strip of its frames in TensorBoard); 0: none. Rendering on a CPU is slow (OSMesa)."""
    best_metric: str = "auto"
    """What best.ckpt maximizes: return, normalized_score (needs a dataset with reference
    scores), success_rate (needs an env that reports success), or auto: success_rate where the
    env reports success, else return."""

    BEST_METRICS: typing.ClassVar[tuple[str, ...]] = ("auto", "return", "normalized_score",
                                                      "success_rate")
    FORMER_DEFAULTS = {"seed_streams": "offset"}

    def validate(self) -> None:
        self._positive("steps", "num_envs", "action_repeat", "checkpoint_every",
                       "log_every", "frame_stack")
        if self.eval_episodes is not None:
            self._positive("eval_episodes")
        self._nonneg("eval_every", "video_every")
        check_seed(self.seed)
        self._one_of("seed_streams", seeding.SCHEMES)
        self._one_of("best_metric", self.BEST_METRICS)
        twice = sorted({k for k in self.obs_keys if list(self.obs_keys).count(k) > 1})
        if twice:  # the policy's input would hold that key's values twice
            raise ConfigError(f"obs_keys names {', '.join(twice)} twice")

    def check_whole_env_steps(self) -> None:
        """For loops that step every env at each step: steps must be a whole number of those."""
        if self.steps % self.num_envs:
            raise ConfigError(f"steps ({self.steps}) must be a multiple of num_envs "
                              f"({self.num_envs}): each step steps every env once")

    def added_inputs(self) -> list[str]:
        """The options (as flags) that give the agent more than the env's own observation."""
        plain = {"frame_stack": 1, "prev_action": False, "prev_reward": False}
        return [f"--{k.replace('_', '-')}" for k, v in plain.items() if getattr(self, k) != v]

    def env_as_is(self) -> bool:
        """The agent sees the env's own observations and acts once per env step (what a
        rule or a policy written for the plain env needs)."""
        return not self.added_inputs() and self.action_repeat == 1

    def stream_seed(self, purpose: str) -> int:
        """The seed of this run's random stream for ``purpose`` (``contrl.seeding``)."""
        return seeding.stream_seed(self.seed, purpose, self.seed_streams)

    def stream(self, purpose: str):
        """This run's numpy generator for ``purpose`` (``contrl.seeding``)."""
        return seeding.stream(self.seed, purpose, self.seed_streams)

    @property
    def env_kwargs(self) -> dict:
        """How every env of this run is made (besides its id and seed)."""
        return {"action_repeat": self.action_repeat, "obs_keys": tuple(self.obs_keys),
                "frame_stack": self.frame_stack, "prev_action": self.prev_action,
                "prev_reward": self.prev_reward}


# --------------------------------------------------------------------------- field docs
@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each dataclass field, from the class source (and bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            src = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(src).body[0].body
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def field_types(cls: type) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def base_type(tp) -> tuple[type, bool, bool]:
    """(scalar type, is_tuple, optional) for a field annotation."""
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = True
        tp = args[0]
        origin = typing.get_origin(tp)
    if origin is tuple:
        return typing.get_args(tp)[0], True, optional
    return tp, False, optional


def coerce(cls: type, name: str, value):
    """Convert a preset/saved value to the field's declared type."""
    tp, is_tuple, optional = base_type(field_types(cls)[name])
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} may not be empty")
    if tp is bool and not is_tuple and not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if tp is float and not is_tuple and isinstance(value, (int, float)) and not math.isfinite(value):
        default = {f.name: f.default for f in dataclasses.fields(cls)}.get(name)
        if math.isnan(value) or not (isinstance(default, float) and default == value):
            raise ConfigError(f"{name} must be a finite number, got {value}")  # -inf: "never"
    if tp is int:  # int(2.5) and int(True) would pass silently as 2 and 1
        for v in (value if is_tuple and isinstance(value, (list, tuple)) else (value,)):
            if isinstance(v, (bool, np.bool_)) or (isinstance(v, numbers.Real) and not
                                                  isinstance(v, numbers.Integral) and
                                                  not float(v).is_integer()):
                raise ConfigError(f"{name} must be a whole number, got {v!r}")
    try:
        if is_tuple:
            return tuple(tp(v) for v in value)
        return tp(value)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{name}: cannot read {value!r} as {tp.__name__}") from e


def with_former_defaults(cls: type, values: dict) -> dict:
    """A saved config's values with the fields it lacks that ``cls`` lists in FORMER_DEFAULTS."""
    return {**cls.FORMER_DEFAULTS, **values}


def build(cls: type, values: dict, saved: bool = False):
    """Instantiate ``cls`` from a mapping, ignoring nothing: unknown keys are errors, except
    fields the class lists as ``RETIRED`` (removed fields that saved configs may still hold).
    ``saved``: ``values`` are a saved run's, whose missing fields take ``FORMER_DEFAULTS``."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in values.items() if k not in cls.RETIRED}
    if saved:
        values = with_former_defaults(cls, values)
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    return cls(**{k: coerce(cls, k, v) for k, v in values.items()})


def to_dict(cfg) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


# --------------------------------------------------------------------------- presets
@lru_cache(maxsize=None)
def load_presets(algo: str) -> dict[str, dict]:
    """``{env_id: {field: value}}`` from ``presets/<algo>.toml`` (empty if there is none).

    A table is one env's preset, or, with an ``envs`` list, the same values for each of those
    envs (a group); an env's own table, if it also has one, adds to its group's values."""
    path = PRESET_DIR / f"{algo}.toml"
    if not path.exists():
        return {}
    with path.open("rb") as f:
        tables = tomllib.load(f)
    presets: dict[str, dict] = {}
    for values in tables.values():  # groups first
        if "envs" in values:
            shared = {k: v for k, v in values.items() if k != "envs"}
            for env_id in values["envs"]:
                presets.setdefault(env_id, {}).update(shared)
    for env_id, values in tables.items():
        if "envs" not in values:
            presets.setdefault(env_id, {}).update(values)
    return presets


def preset_for(algo: str, env_id: str) -> dict:
    return dict(load_presets(algo).get(env_id, {}))
