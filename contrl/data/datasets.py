"""Offline datasets: read Minari datasets (by id or path) and D4RL-style HDF5 files into one
in-memory transition layout, and write Minari datasets atomically.

In memory (``Dataset``) every row is a transition with its real next observation; actions
are in [-1, 1] (the agent's units), ``terminals`` marks true terminations and ``timeouts``
time-limit ends, kept apart. On disk, Minari datasets hold the env's own action units, as
every Minari user expects; contrl rescales on reading and writing.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from contrl.data.batch import Batch, SequenceBatch
from contrl.data.windows import leading_run, sequence_batch
from contrl.errors import ContrlError
from contrl.run import sync_dir, sync_tree

D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
FINGERPRINT_VERSION = "d1"
"""Changes whenever loading changes what a file's transitions read as (action scaling, next
observations, cut episodes): fingerprints of other versions are not compared."""
NAME_RE = re.compile(r"^[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*-v\d+$")


class DatasetError(ContrlError):
    """A missing, malformed or mismatched dataset."""


def check_same_data(saved: str | None, dataset, source, where: str, fix: str) -> None:
    """Refuse data whose transitions differ from those ``where`` was trained on (``saved``:
    their fingerprint; None, from runs before fingerprints, or another fingerprint version is
    not compared). ``source``: the dataset as given; ``fix``: what the user can do."""
    if saved is None or saved.partition(":")[0] != dataset.fingerprint.partition(":")[0]:
        return
    if saved != dataset.fingerprint:
        raise ContrlError(f"{where} was trained on other transitions than {source} gives now "
                          "(the dataset remade or replaced under its name, or read "
                          f"another way, e.g. other obs_keys or action units); {fix}")


@dataclasses.dataclass
class Dataset:
    """Transitions of a dataset (N rows) and what is known about where they came from."""

    observations: np.ndarray       # (N, obs_dim) float32
    actions: np.ndarray            # (N, action_dim) float32, in [-1, 1]
    rewards: np.ndarray            # (N,) float32
    terminals: np.ndarray          # (N,) bool: the episode truly ended after this step
    timeouts: np.ndarray           # (N,) bool: the episode was cut by a time limit here
    next_observations: np.ndarray  # (N, obs_dim) float32: the real next observation
    episode_returns: np.ndarray    # undiscounted return of each complete episode
    episode_ends: np.ndarray       # (N,) bool: the next row does not continue this episode
    name: str = ""
    env_id: str | None = None
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    metadata: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def action_dim(self) -> int:
        return self.actions.shape[1]

    @functools.cached_property
    def fingerprint(self) -> str:
        """``<FINGERPRINT_VERSION>:<16 hex digits>`` hashing the transitions as loaded
        (observations, actions, rewards, ends): tells apart two datasets of one name and
        length, e.g. one remade under the same id."""
        h = hashlib.blake2b(digest_size=8)
        for a in (self.observations, self.actions, self.rewards, self.terminals, self.timeouts,
                  self.next_observations):
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a)
        return f"{FINGERPRINT_VERSION}:{h.hexdigest()}"

    def head(self, n: int) -> "Dataset":
        """The first ``n`` transitions (all of them if ``n`` is 0); more than the data holds is
        refused (a run would train on fewer transitions than it says)."""
        if n > len(self):
            raise DatasetError(f"dataset_size {n} is more than {self.name}'s {len(self)} "
                               "transitions (0 uses them all)")
        if n <= 0 or n == len(self):
            return self
        ends = self.episode_ends[:n].copy()
        ends[-1] = True
        cut = slice(0, n)
        return dataclasses.replace(
            self, observations=self.observations[cut], actions=self.actions[cut],
            rewards=self.rewards[cut], terminals=self.terminals[cut],
            timeouts=self.timeouts[cut], next_observations=self.next_observations[cut],
            episode_ends=ends, episode_returns=_episode_returns(
                self.rewards[cut], ends, (self.terminals | self.timeouts)[cut],
                self.metadata.get("cut_episodes", ())),
            name=f"{self.name}[:{n}]")

    def check_env(self, env_id: str, obs_dim: int, action_dim: int, action_repeat: int = 1) -> None:
        """Refuse a dataset whose shapes do not fit the environment, or whose steps are not
        the run's (collected with another action repeat)."""
        recorded_repeat = self.metadata.get("action_repeat", 1)
        if recorded_repeat != action_repeat:
            raise DatasetError(f"dataset {self.name} was collected with action_repeat "
                               f"{recorded_repeat}; this run has {action_repeat}")
        if self.obs_dim != obs_dim:
            raise DatasetError(f"dataset {self.name} has {self.obs_dim}-dim observations; "
                               f"{env_id} has {obs_dim}{_layout(env_id)}")
        if self.action_dim != action_dim:
            raise DatasetError(f"dataset {self.name} has {self.action_dim}-dim actions; "
                               f"{env_id} has {action_dim}")
        made_in = self.metadata.get("env_id")
        check_recorded_env(self.name, made_in, env_id)  # another env, dm_control task or maze
        if made_in:
            from contrl.envs.make import ant_model
            theirs, ours = ant_model(made_in), ant_model(env_id)
            if theirs and ours and theirs != ours:
                raise DatasetError(f"dataset {self.name} was collected in {made_in} "
                                   f"({theirs}'s ant); {env_id} has {ours}'s ant")

    def sample(self, rng: np.random.Generator, batch_size: int, gamma: float, k: int = 1) -> Batch:
        """``k`` batches of ``batch_size`` transitions drawn uniformly, stacked on a leading axis."""
        i = rng.integers(0, len(self), k * batch_size)
        shape = (k, batch_size)
        return Batch(obs=self.observations[i].reshape(*shape, -1),
                     action=self.actions[i].reshape(*shape, -1),
                     reward=self.rewards[i].reshape(shape),
                     discount=(gamma * ~self.terminals[i]).astype(np.float32).reshape(shape),
                     next_obs=self.next_observations[i].reshape(*shape, -1))

    def sample_windows(self, rng: np.random.Generator, n: int, gamma: float, k: int,
                       length: int, burn_in: int = 0,
                       whole_episodes: bool = False) -> SequenceBatch:
        """``k`` batches of ``n`` windows of ``burn_in + length`` steps, each inside one
        episode, laid out as ``ReplayBuffer.sample_windows`` lays out its own.

        A window's first trained step is drawn uniformly among the rows (with
        ``whole_episodes``: among episode starts); up to ``burn_in`` earlier rows of its
        episode warm the recurrent state. The observation after an episode's last step is that
        row's real next observation; steps past it are padding, masked out."""
        N, W = k * n, burn_in + length
        ends = self.episode_ends.copy()
        ends[-1] = True  # the data end an episode
        if whole_episodes:
            starts = np.flatnonzero(np.r_[True, ends[:-1]])
            s = starts[rng.integers(0, starts.size, N)]
        else:
            s = rng.integers(0, len(self), N)
        back = np.zeros(N, np.int64)
        if burn_in:
            before = s[:, None] - np.arange(1, burn_in + 1)  # same episode: no end in between
            back = leading_run((before >= 0) & ~ends[np.maximum(before, 0)])
        rows = np.minimum((s - back)[:, None] + np.arange(W + 1), len(self) - 1)
        inside = np.cumprod(np.c_[np.ones(N, bool), ~ends[rows[:, :W - 1]]], axis=1).astype(bool)
        # o_t: row t's observation inside the episode, else the previous row's next one (the
        # real final observation right after the episode's last step, padding after that)
        after = np.c_[~inside, np.ones(N, bool)]
        prev = np.c_[rows[:, :1], rows[:, :-1]]
        obs = np.where(after[..., None], self.next_observations[prev], self.observations[rows])
        steps = rows[:, :W]
        return sequence_batch(obs, self.actions[steps], self.rewards[steps],
                              self.terminals[steps], inside, back, gamma, k, n)

    def require_episodes(self, why: str) -> None:
        """Refuse data whose episode boundaries are unknown (no terminal and no timeout in any
        row, so all of it would seem one episode); ``why`` says what needs them."""
        if not (self.terminals | self.timeouts).any() and not self.episode_ends[:-1].any():
            raise DatasetError(f"dataset {self.name} has no episode boundaries (no terminal "
                               f"and no timeout in any row): {why}")

    def with_previous(self, action: bool, reward: bool) -> "Dataset":
        """The observations with the previous action and/or reward appended, as the env's
        ``prev_action`` / ``prev_reward`` wrapper appends them (zeros on an episode's first
        step, actions clipped to [-1, 1]), built from each row's episode."""
        self.require_episodes("the previous action or reward of an episode's first step is "
                              "zero, so its start must be known")
        first = np.r_[True, self.episode_ends[:-1]]
        now, nxt = [self.observations], [self.next_observations]
        if action:
            a = np.clip(self.actions, -1.0, 1.0)
            now.append(np.where(first[:, None], 0.0, np.roll(a, 1, axis=0)))
            nxt.append(a)
        if reward:
            now.append(np.where(first, 0.0, np.roll(self.rewards, 1))[:, None])
            nxt.append(self.rewards[:, None])
        cat = lambda parts: np.concatenate(parts, axis=1).astype(np.float32)  # noqa: E731
        return dataclasses.replace(self, observations=cat(now), next_observations=cat(nxt))

    @property
    def scored(self) -> bool:
        """Whether the reference scores (random and expert returns) are known."""
        return self.ref_min_score is not None and self.ref_max_score is not None

    def normalized_score(self, episode_return: float) -> float | None:
        """100 * (return - random) / (expert - random), when the references are known."""
        if not self.scored:
            return None
        return normalized_score(episode_return, self.ref_min_score, self.ref_max_score)

    def episodes(self) -> list[dict]:
        """The transitions as episodes (dicts of observations (T+1), actions in [-1, 1],
        rewards, terminations, truncations), e.g. to write them as a new dataset."""
        out = []
        ends = np.flatnonzero(self.episode_ends)
        for start, end in zip(np.concatenate([[0], ends[:-1] + 1]), ends):
            rows = slice(start, end + 1)
            out.append({"observations": np.concatenate(
                            [self.observations[rows], self.next_observations[end:end + 1]]),
                        "actions": self.actions[rows], "rewards": self.rewards[rows],
                        "terminations": self.terminals[rows], "truncations": self.timeouts[rows]})
        return out

    def returns_to_go(self, gamma: float) -> np.ndarray:
        """Discounted Monte-Carlo return from each row to the end of its episode (an episode cut
        by a time limit, or by the end of the data, is summed up to the cut)."""
        out = np.zeros(len(self), np.float64)
        running = 0.0
        ends = self.episode_ends
        for i in range(len(self) - 1, -1, -1):
            if ends[i]:
                running = 0.0
            running = self.rewards[i] + gamma * running
            out[i] = running
        return out.astype(np.float32)


def _layout(env_id: str) -> str:
    """How a maze's dict observation is flattened by default, for the shape-mismatch message."""
    from contrl.envs.make import default_obs_keys
    from contrl.envs.maze import is_maze
    if is_maze(env_id):
        return f" ({', '.join(default_obs_keys(env_id))}, flattened in that order)"
    return ""


def check_action_range(actions: np.ndarray, low, high, where: str, declared: str,
                       other: str) -> None:
    """Refuse actions outside the range their declared units allow, naming the first row."""
    tol = 1e-5 * np.maximum(1.0, np.abs(np.asarray(high) - np.asarray(low)))
    bad = ((actions < np.asarray(low) - tol) | (actions > np.asarray(high) + tol)).any(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise DatasetError(f"{where}: actions at row {row} ({actions[row].tolist()}) lie outside "
                           f"the range of {declared}; if they are in the other units, say so "
                           f"(--dataset-action-units {other})")


def check_finite_rows(values: np.ndarray, column: str, where: str) -> None:
    """Refuse NaN or infinite values, naming the column and the first bad row."""
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        return
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        value = values.reshape(len(values), -1)[row]
        kind = "nan" if np.isnan(value).any() else "inf"
        raise DatasetError(f"{where}: {column} has a non-finite value ({kind}) at row {row}")


def normalized_score(episode_return: float, ref_min: float, ref_max: float) -> float:
    return 100.0 * (episode_return - ref_min) / (ref_max - ref_min)


def _episode_returns(rewards, ends, ended, skip=()) -> np.ndarray:
    """Undiscounted returns of the complete episodes: ``rewards`` cut after each ``ends`` row,
    a piece counted where its last row ``ended`` (a terminal or a timeout, not data that
    stop mid-episode) and its number is not in ``skip`` (episodes a collection cut short at
    its step budget)."""
    idx = np.flatnonzero(ends)
    if idx.size == 0:
        return np.zeros(0)
    sums = np.add.reduceat(rewards[:idx[-1] + 1].astype(np.float64), np.r_[0, idx[:-1] + 1])
    keep = np.asarray(ended, bool)[idx]
    keep[[i for i in skip if i < len(keep)]] = False
    return sums[keep]


# ---------------------------------------------------------------------------- action units
def to_unit(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return (2.0 * (actions - low) / (high - low) - 1.0).astype(np.float32)


def from_unit(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return (low + (np.clip(actions, -1.0, 1.0) + 1.0) * (high - low) / 2.0).astype(np.float32)


def _env_bounds(env_id: str):
    from contrl.envs.make import raw_action_space
    space = raw_action_space(env_id)
    return space.low.astype(np.float64), space.high.astype(np.float64)


# -------------------------------------------------------------------------------- reading
def minari_root() -> Path:
    """Where Minari keeps local datasets (MINARI_DATASETS_PATH or ~/.minari/datasets)."""
    root = Path(os.environ.get("MINARI_DATASETS_PATH") or os.path.join(
        os.path.expanduser("~"), ".minari", "datasets"))
    if root.exists() and not root.is_dir():  # else a collection fails only when it writes
        raise ContrlError(f"the datasets folder {root} is a file (MINARI_DATASETS_PATH names "
                          "the folder where datasets are kept)")
    return root


ACTION_UNITS = ("env", "scaled")


def dataset_location(source: str | os.PathLike) -> Path:
    """Where a dataset source lives: the file or directory it names, else the local Minari
    dataset of that id (which may not exist)."""
    path = Path(source)
    return path if path.exists() else minari_root() / str(source)


def load_dataset(source: str | os.PathLike, env_id: str | None = None,
                 obs_keys: tuple[str, ...] = (), action_units: str = "env") -> Dataset:
    """A dataset from a Minari id, a Minari dataset directory or a D4RL-style HDF5 file.
    ``env_id`` (else the env recorded in the dataset) gives the action bounds.
    Dict observations (goal-reaching data) are flattened in the order ``obs_keys``, else the
    order the dataset records, else the env's default (as ``make_env`` flattens them).

    Action units, never guessed from the data: Minari datasets hold the env's own units (the
    format's convention); an HDF5 file says so in its ``action_units`` attribute (``env`` or
    ``scaled``, i.e. already in [-1, 1]) or, without one, ``action_units`` says it (default
    ``env``, as D4RL stored them). Actions outside the declared range are refused."""
    if action_units not in ACTION_UNITS:
        raise DatasetError(f"dataset action units must be env or scaled, got '{action_units}'")
    path = dataset_location(source)
    if path.is_file():
        return _load_d4rl(path, env_id, obs_keys, action_units)
    if path.is_dir():
        return _load_minari_dir(path, env_id, obs_keys)
    known = ", ".join(r["id"] for r in list_datasets()) or "none"
    raise DatasetError(f"no dataset '{source}': not a file, a directory or a local Minari id "
                       f"(local datasets: {known}; `contrl collect` makes one)")


def _data_dir(path: Path) -> Path:
    return path / "data" if (path / "data").is_dir() else path


CACHE_NAME = "contrl_flat.npz"
_ARRAYS = ("observations", "actions", "rewards", "terminals", "timeouts", "next_observations",
           "episode_returns", "episode_ends")


def _cache_key(data: Path, env_id: str | None, obs_keys: tuple[str, ...]) -> str:
    """What the flat copy depends on: the episodes file (size, mtime), the action bounds' env
    and the flattening order of dict observations."""
    files = sorted(p for p in data.iterdir() if p.suffix in (".hdf5", ".h5", ".arrow")
                   or p.is_dir())
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return json.dumps({"format": 2, "files": stamp, "env_id": env_id, "obs_keys": list(obs_keys)})


def _obs_order(obs_keys, recorded, env_id: str | None) -> tuple[str, ...]:
    from contrl.envs.make import default_obs_keys
    return tuple(obs_keys or recorded or default_obs_keys(env_id or ""))


def flatten_observations(obs, keys: tuple[str, ...], where: str) -> np.ndarray:
    """(T, dim) float32 observations from an array or a dict of arrays (concatenated in the
    order ``keys``)."""
    if hasattr(obs, "keys"):  # a dict, or an h5py group
        missing = [k for k in keys if k not in obs]
        if missing:
            raise DatasetError(f"{where}: observation keys {', '.join(missing)} not among its "
                               f"keys {', '.join(obs.keys())} (set --obs-keys)")
        parts = [np.asarray(obs[k], np.float32) for k in keys]  # (an h5py dataset reads whole)
        parts = [x.reshape(len(x), -1) for x in parts]
        if len({len(x) for x in parts}) != 1:
            raise DatasetError(f"{where}: observation keys {', '.join(keys)} differ in length")
        return np.concatenate(parts, axis=1)
    return np.asarray(obs, np.float32)


def _load_minari_dir(path: Path, env_id: str | None, obs_keys: tuple[str, ...] = ()) -> Dataset:
    """A Minari dataset. The first load reads it episode by episode (slow: Minari and h5py pay
    per episode) and saves a flat copy of the arrays beside it (``contrl_flat.npz``, written
    atomically); later loads read that copy, unless the episodes file changed."""
    data = _data_dir(path)
    if not (data / "metadata.json").is_file():
        raise DatasetError(f"{path} is not a Minari dataset (no data/metadata.json)")
    meta = _read_metadata(data)
    check_recorded_env(meta.get("dataset_id", path.name), recorded_env(meta), env_id)
    env_id = env_id or recorded_env(meta)
    obs_keys = _obs_order(obs_keys, meta.get("contrl", {}).get("obs_keys"), env_id)
    info = dict(name=meta.get("dataset_id", path.name), env_id=env_id,
                ref_min_score=meta.get("ref_min_score"), ref_max_score=meta.get("ref_max_score"),
                metadata=meta.get("contrl", {}))
    key = _cache_key(data, env_id, obs_keys)
    cache = data / CACHE_NAME
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["key"]) == key:
                    return Dataset(*(z[k] for k in _ARRAYS), **info)
        except (OSError, ValueError, KeyError):
            pass  # unreadable copy: rebuild it below
    ds = _read_minari_episodes(path, data, info, obs_keys)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".contrl-tmp-", suffix=".npz", dir=data)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.asarray(key), **{k: getattr(ds, k) for k in _ARRAYS})
        os.chmod(tmp, 0o644)
        os.replace(tmp, cache)
    except OSError:
        pass  # read-only location: no flat copy, the next load reads the episodes again
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return ds


def _read_minari_episodes(path: Path, data: Path, info: dict,
                          obs_keys: tuple[str, ...] = ()) -> Dataset:
    """The episodes of a Minari dataset as a Dataset; ``info``: its name, env_id, reference
    scores and contrl metadata (from metadata.json); dict observations are flattened in the
    order ``obs_keys``."""
    env_id = info["env_id"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import minari
        try:
            ds = minari.MinariDataset(data)
        except (ValueError, KeyError, OSError) as e:
            raise DatasetError(f"cannot read Minari dataset {path}: {e}") from None
    parts = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "next")}
    try:
        _append_episodes(ds, parts, path, obs_keys, info["metadata"].get("obs_keys"))
    except (OSError, KeyError) as e:  # e.g. a damaged main_data.hdf5
        raise DatasetError(f"cannot read the episodes of Minari dataset {path} ({e})") from None
    if not parts["rew"]:
        raise DatasetError(f"{path}: the dataset has no episodes")
    actions = np.concatenate(parts["act"])
    if env_id is not None:
        low, high = _env_bounds(env_id)
        if low.shape[0] != actions.shape[1]:
            raise DatasetError(f"dataset {path.name} has {actions.shape[1]}-dim actions; "
                               f"{env_id} has {low.shape[0]}")
        check_finite_rows(actions, "actions", str(path))
        check_action_range(actions, low, high, str(path), f"{env_id}'s own units (Minari's "
                           "convention)", "scaled, which Minari datasets cannot declare")
        actions = to_unit(actions, low, high)
    rewards, terms, truncs = (np.concatenate(parts[k]) for k in ("rew", "term", "trunc"))
    observations, next_obs = np.concatenate(parts["obs"]), np.concatenate(parts["next"])
    for column, values in (("observations", observations), ("actions", actions),
                           ("rewards", rewards), ("next_observations", next_obs)):
        check_finite_rows(values, column, str(path))
    ends = np.zeros(len(rewards), bool)
    ends[np.cumsum([len(r) for r in parts["rew"]]) - 1] = True
    returns = _episode_returns(rewards, ends, terms | truncs,
                               info["metadata"].get("cut_episodes", ()))
    return Dataset(observations, actions, rewards, terms, truncs, next_obs, returns, ends, **info)


def _append_episodes(ds, parts: dict, path: Path, obs_keys: tuple[str, ...],
                     recorded: list | None = None) -> None:
    """Each episode of the Minari dataset ``ds`` appended to ``parts``' lists, observations
    flattened in the order ``obs_keys``; observations stored flat in the ``recorded`` order
    (contrl's goal datasets) are refused in another."""
    reordered = bool(recorded) and tuple(recorded) != tuple(obs_keys)
    for n, ep in enumerate(ds.iterate_episodes()):
        if reordered and not hasattr(ep.observations, "keys"):
            raise DatasetError(f"{path} stores its observations flat, keys in the order "
                               f"{', '.join(recorded)}, not {', '.join(obs_keys)}: give "
                               f"--obs-keys {' '.join(recorded)}")
        obs = flatten_observations(ep.observations, obs_keys, f"{path} episode {n}")
        if obs.ndim != 2:
            raise DatasetError(f"{path}: contrl needs flat (vector) observations")
        steps = len(ep.rewards)
        if len(obs) != steps + 1 or len(ep.actions) != steps:
            raise DatasetError(f"{path}: episode {n} has {len(obs)} observations and "
                               f"{len(ep.actions)} actions for {steps} rewards")
        parts["obs"].append(obs[:-1])
        parts["next"].append(obs[1:])
        parts["act"].append(np.asarray(ep.actions, np.float32).reshape(steps, -1))
        parts["rew"].append(np.asarray(ep.rewards, np.float32))
        parts["term"].append(np.asarray(ep.terminations, bool))
        parts["trunc"].append(np.asarray(ep.truncations, bool).copy())


def recorded_env(meta: dict) -> str | None:
    """The env a Minari dataset was collected in, from its metadata: contrl's record, else
    Minari's env spec."""
    entry = meta.get("contrl")
    return (entry.get("env_id") if isinstance(entry, dict) else None) or _spec_id(meta.get("env_spec"))


def env_family(env_id: str) -> str:
    """The environment an id names, its version and variant aside: hopper for Hopper-v5 and
    Hopper-P-v5, antmaze for every AntMaze, dmc:walker for dm_control's walker tasks."""
    if env_id.startswith("dmc:"):
        return env_id.split("-")[0].lower()
    return re.split(r"[-_]", env_id.split("/")[-1])[0].lower()


def env_task(env_id: str) -> str:
    """What an id's rewards are about: a dm_control task (dmc:walker-walk), a maze's layout
    (antmaze_umaze, whatever its goal variant: _D4RL, _Fixed, _Diverse_GR), else the
    environment family (versions and POMDP variants share their rewards' meaning)."""
    if env_id.startswith("dm_control/"):  # Shimmy's id of a dm_control task, as Minari records it
        env_id = "dmc:" + re.sub(r"-v\d+$", "", env_id[len("dm_control/"):])
    if env_id.startswith("dmc:"):
        return env_id.lower()
    family = env_family(env_id)
    if family.endswith("maze"):
        parts = re.split(r"[-_]", env_id.split("/")[-1])
        layout = parts[1].lower() if len(parts) > 1 else ""
        return f"{family}_{layout}" if layout in ("umaze", "medium", "large") else family
    return family


def same_env_task(a: str, b: str) -> bool:
    return env_task(a) == env_task(b)


def dataset_env(source: str | os.PathLike) -> str | None:
    """The env a dataset (Minari id or directory, HDF5 file) records it was collected in,
    read from its metadata alone; None where it records none or cannot be read (loading it
    names that problem)."""
    path = dataset_location(source)
    try:
        if path.is_file():
            import h5py
            with h5py.File(path, "r") as f:
                return _h5_attrs(f).get("env_id")
        if path.is_dir():
            return recorded_env(_read_metadata(_data_dir(path)))
    except (OSError, DatasetError):
        pass
    return None


def _h5_attrs(f) -> dict:
    """An HDF5 file's attributes as Python values (text decoded, numbers unwrapped)."""
    out = {}
    for k, v in f.attrs.items():
        v = v.item() if hasattr(v, "item") else v
        out[k] = v.decode() if isinstance(v, bytes) else v
    return out


def check_recorded_env(name: str, recorded: str | None, env_id: str | None) -> None:
    """Refuse data collected in another environment or task than the run's (versions of one
    environment are allowed: D4RL's hopper data on Hopper-v5, a maze's data on another goal
    variant of the same maze; another dm_control task or maze is not), or in a partially
    observed variant of it whose observations differ (Pendulum-v1's on Pendulum-P-v1)."""
    if recorded and env_id and not same_env_task(recorded, env_id):
        raise DatasetError(f"dataset {name} was collected in {recorded}, not {env_id}")
    from contrl.envs.pomdp import observation_view
    if recorded and env_id and observation_view(recorded) != observation_view(env_id):
        raise DatasetError(f"dataset {name} was collected in {recorded}, whose observations are "
                           f"not those a {env_id} policy sees: collect the data in {env_id}")


def _spec_id(env_spec) -> str | None:
    if not env_spec:
        return None
    try:
        spec_id = json.loads(env_spec)["id"] if isinstance(env_spec, str) else env_spec.id
    except (ValueError, KeyError, AttributeError, TypeError):
        return None
    return spec_id if isinstance(spec_id, str) else None  # a hand-edited file may hold anything


def _load_d4rl(path: Path, env_id: str | None, obs_keys: tuple[str, ...] = (),
               action_units: str = "env") -> Dataset:
    import h5py
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"cannot open {path} as HDF5 ({e})") from None
    with f:
        missing = [k for k in D4RL_KEYS if k not in f]
        if missing:
            raise DatasetError(f"{path} lacks {', '.join(missing)} (a D4RL-style file has "
                               f"{', '.join(D4RL_KEYS)})")
        attrs = _h5_attrs(f)
        keys = _obs_order(obs_keys, None, env_id or attrs.get("env_id"))

        def member(name: str) -> np.ndarray:
            """An array member of the file: observations may be a group of arrays (dict
            observations); anything else must be a numeric array with rows."""
            item = f[name]
            if isinstance(item, h5py.Group):
                if name in ("observations", "next_observations"):
                    return flatten_observations(item, keys, str(path))
                raise DatasetError(f"{path}: {name} is a group, not an array")
            value = item[()]
            if np.ndim(value) == 0:
                raise DatasetError(f"{path}: {name} is a scalar, not an array of rows")
            if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
                raise DatasetError(f"{path}: {name} does not hold numbers ({value.dtype})")
            return value

        arrays = {k: member(k) for k in D4RL_KEYS}
        next_obs = member("next_observations") if "next_observations" in f else None
    n = len(arrays["rewards"])
    if n == 0:
        raise DatasetError(f"{path}: the dataset has no rows")
    for k in ("observations", "actions", "rewards"):
        check_finite_rows(arrays[k], k, str(path))
    if next_obs is not None:
        check_finite_rows(next_obs, "next_observations", str(path))
    bad = [f"{k} ({len(v)})" for k, v in arrays.items() if len(v) != n]
    if next_obs is not None and len(next_obs) != n:
        bad.append(f"next_observations ({len(next_obs)})")
    if bad:
        raise DatasetError(f"{path}: lengths differ from rewards ({n}): {', '.join(bad)}")
    for k in ("rewards", "terminals", "timeouts"):
        if arrays[k].size != n:
            raise DatasetError(f"{path}: {k} has shape {arrays[k].shape}; expected ({n},), "
                               "one value per row")
    for k in ("terminals", "timeouts"):
        flags = arrays[k]
        if flags.dtype != bool and not np.isin(flags, (0, 1)).all():
            odd = flags.reshape(-1)[~np.isin(flags.reshape(-1), (0, 1))][0]
            raise DatasetError(f"{path}: {k} must be booleans (0 or 1), found {odd}")
    check_recorded_env(path.name, attrs.get("env_id"), env_id)
    obs = np.asarray(arrays["observations"], np.float32).reshape(n, -1)
    actions = np.asarray(arrays["actions"], np.float32).reshape(n, -1)
    rewards = np.asarray(arrays["rewards"], np.float32).reshape(n)
    terms = np.asarray(arrays["terminals"], bool).reshape(n)
    timeouts = np.asarray(arrays["timeouts"], bool).reshape(n)
    if next_obs is None:
        # the next row's observation, except where the episode ended by time limit (the next
        # row is a reset) and at the very last row: those transitions are dropped
        keep = ~timeouts
        keep[-1] = False
        nxt = np.empty_like(obs)
        nxt[:-1] = obs[1:]
        idx = np.flatnonzero(keep)
        ep_returns = _episode_returns(rewards, terms | timeouts, terms | timeouts)
        ends = terms.copy()
        ends[:-1] |= timeouts[1:]  # the row before a dropped timeout row ends its episode
        ends[-2:] = True
        if idx.size == 0:
            raise DatasetError(f"{path}: no complete transition (a row needs the next row's "
                               "observation, or next_observations in the file)")
        cut = np.zeros(n, bool)
        cut[:-1] = timeouts[1:]  # the row before a dropped timeout row: its episode's last
        obs, actions, rewards, terms, nxt = obs[idx], actions[idx], rewards[idx], terms[idx], nxt[idx]
        timeouts, ends = cut[idx], ends[idx]
    else:
        nxt = np.asarray(next_obs, np.float32).reshape(n, -1)
        if nxt.shape[1] != obs.shape[1]:
            raise DatasetError(f"{path}: next_observations have {nxt.shape[1]} numbers a row, "
                               f"observations {obs.shape[1]}")
        ends = terms | timeouts
        ends[-1] = True
        ep_returns = _episode_returns(rewards, ends, terms | timeouts)
    units = attrs.get("action_units", action_units)
    if units not in ACTION_UNITS:
        raise DatasetError(f"{path}: action_units attribute must be env or scaled, got {units!r}")
    env_id = env_id or attrs.get("env_id")
    if units == "scaled":
        check_action_range(actions, -1.0, 1.0, str(path), "scaled ([-1, 1])", "env")
    elif env_id is not None:
        low, high = _env_bounds(env_id)
        if low.shape[0] != actions.shape[1]:
            raise DatasetError(f"dataset {path.name} has {actions.shape[1]}-dim actions; "
                               f"{env_id} has {low.shape[0]}")
        check_action_range(actions, low, high, str(path), f"{env_id}'s own units", "scaled")
        actions = to_unit(actions, low, high)
    return Dataset(obs, actions, rewards, terms, timeouts, nxt, ep_returns, ends, name=path.name,
                   env_id=env_id or attrs.get("env_id"),
                   ref_min_score=attrs.get("ref_min_score"), ref_max_score=attrs.get("ref_max_score"),
                   metadata={"action_repeat": int(attrs.get("action_repeat", 1))})


def with_run_inputs(ds: Dataset, obs_dim: int, prev_action: bool, prev_reward: bool,
                    frame_stack: int) -> Dataset:
    """The dataset with the observations a run's policy sees (``obs_dim`` wide): as they are
    when they already have that width (data collected with the same env options); with the
    previous action and/or reward appended from the episodes when they are the plain
    observations of a run that appends them. Plain observations for a frame-stacked run are
    refused; any other width is left for ``Dataset.check_env`` to name."""
    extra = prev_action * ds.action_dim + prev_reward
    plain = obs_dim // frame_stack - extra
    if ds.obs_dim == obs_dim:
        return ds
    if frame_stack > 1 and ds.obs_dim in (plain, plain + extra):
        raise DatasetError(f"dataset {ds.name} holds single observations; a run with "
                           f"frame_stack {frame_stack} needs data collected with the same "
                           "frame_stack")
    if extra and ds.obs_dim == plain:
        return ds.with_previous(prev_action, prev_reward)
    return ds


def dataset_metadata(name: str) -> dict:
    """The Minari metadata of the local dataset ``name`` (without loading its data)."""
    path = _data_dir(minari_root() / name) / "metadata.json"
    if not path.is_file():
        known = ", ".join(r["id"] for r in list_datasets()) or "none"
        raise DatasetError(f"no local dataset '{name}' (local datasets: {known})")
    return _read_metadata(path.parent)


def _read_metadata(data: Path) -> dict:
    """A dataset's metadata.json. Minari records reference scores only for gymnasium envs;
    for others (dmc:...) they are taken from the copy contrl keeps in its own entry."""
    try:
        meta = json.loads((data / "metadata.json").read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise DatasetError(f"{data / 'metadata.json'} is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{data / 'metadata.json'} is not a Minari metadata object")
    own = meta.get("contrl", {})
    if not isinstance(own, dict):
        raise DatasetError(f"{data / 'metadata.json'}: its 'contrl' entry is not an object")
    for key in ("ref_min_score", "ref_max_score"):
        if meta.get(key) is None and own.get(key) is not None:
            meta[key] = own[key]
    return meta


def _mistyped_fields(meta: dict, extra) -> str:
    """What in a dataset's metadata the listing cannot show ('' if nothing)."""
    expected = {"total_episodes": (meta.get("total_episodes"), int),
                "total_steps": (meta.get("total_steps"), int),
                "contrl.average_return": (extra.get("average_return"), (int, float)),
                "contrl.env_id": (extra.get("env_id"), str)}
    return ", ".join(f"{k} is {v!r}" for k, (v, kind) in expected.items()
                     if v is not None and (isinstance(v, bool) or not isinstance(v, kind)))


def list_datasets() -> list[dict]:
    """Local Minari datasets: id (its folder under the root, which is what loads it),
    episodes, steps, size in MB, average episode return, and ``metadata_id`` where the
    metadata names another id (a copied folder); a dataset whose metadata cannot be read is
    listed by its folder with the ``problem``."""
    root = minari_root()
    rows = []
    if not root.is_dir():
        return rows
    for meta_path in sorted(root.glob("**/data/metadata.json")):
        if any(part.startswith(".") for part in meta_path.relative_to(root).parts):
            continue
        folder_id = meta_path.parent.parent.relative_to(root).as_posix()  # what loads it
        try:
            meta = _read_metadata(meta_path.parent)
        except (OSError, DatasetError) as e:  # listed, with why it cannot be read
            rows.append({"id": folder_id, "path": str(meta_path.parent.parent), "problem": str(e)})
            continue
        extra = meta.get("contrl", {})
        wrong = _mistyped_fields(meta, extra)
        if wrong:  # a hand-edited file: listed as unreadable, the other datasets still listed
            rows.append({"id": folder_id, "path": str(meta_path.parent.parent),
                         "problem": f"metadata.json: {wrong}"})
            continue
        size = sum(p.stat().st_size for p in meta_path.parent.iterdir()
                   if p.is_file() and p.name != CACHE_NAME and not p.name.startswith("."))
        named = meta.get("dataset_id", folder_id)
        rows.append({"id": folder_id, **({"metadata_id": named} if named != folder_id else {}),
                     "episodes": meta.get("total_episodes"), "steps": meta.get("total_steps"),
                     "size_mb": size / 2**20, "average_return": extra.get("average_return"),
                     "env": extra.get("env_id") or _spec_id(meta.get("env_spec")),
                     "path": str(meta_path.parent.parent)})
    return rows


# -------------------------------------------------------------------------------- writing
def _flat_space(env_id: str, buffers):
    """The observation space of the data as written: the env's own, or for dict-observation
    envs the flat vector contrl's episodes hold."""
    import gymnasium as gym

    from contrl.envs.make import has_dict_observations, raw_observation_space
    if env_id.startswith("dmc:") or not has_dict_observations(env_id):
        return raw_observation_space(env_id)
    dim = np.asarray(buffers[0].observations).shape[1]
    return gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)


def check_name(name: str) -> None:
    """Refuse a dataset name that contrl's layout or Minari's id rules would not accept."""
    from minari.dataset.minari_dataset import DATASET_ID_RE
    if not NAME_RE.match(name) or not DATASET_ID_RE.fullmatch(name):
        raise DatasetError(f"dataset name '{name}' must look like hopper-expert-v0 "
                           "(letters, digits, dashes, ending in -v<version>)")


def _minari_env_id(env_id: str, buffers) -> str | None:
    """The Gymnasium id Minari may check the data against, or None where contrl's data do not
    have that env's spaces: dm_control and partially observed tasks are not Gymnasium ids;
    dict-observation envs are written flat (the key order goes into contrl's metadata); data
    collected with a frame stack or previous actions have wider observations."""
    import gymnasium as gym

    from contrl.envs.make import has_dict_observations, raw_observation_space

    if env_id.startswith("dmc:") or has_dict_observations(env_id) or env_id not in gym.registry:
        return None
    width = buffers[0].observations.shape[-1] if buffers else None
    return env_id if width in (None, raw_observation_space(env_id).shape[0]) else None


def write_minari(name: str, episodes: list[dict], env_id: str, metadata: dict,
                 ref_min: float | None = None, ref_max: float | None = None) -> Path:
    """Write ``episodes`` (dicts of observations (T+1), actions in [-1, 1] (T), rewards,
    terminations, truncations) as the Minari dataset ``name``. Written in a hidden temporary
    directory and renamed into place, so a crash never leaves a half-written dataset."""
    from minari.data_collector import EpisodeBuffer

    from contrl.envs.make import raw_action_space

    check_name(name)
    root = minari_root()
    final = root / name
    if final.exists():
        raise DatasetError(f"dataset {name} already exists ({final}); choose another name or "
                           "version")
    for column in ("observations", "actions", "rewards"):  # nothing unusable is written
        check_finite_rows(np.concatenate([np.asarray(ep[column], np.float32).reshape(
            len(ep[column]), -1) for ep in episodes]), column, f"dataset {name} (not written)")
    root.mkdir(parents=True, exist_ok=True)
    low, high = _env_bounds(env_id)
    buffers = [EpisodeBuffer(id=i, observations=np.asarray(ep["observations"], np.float32),
                             actions=from_unit(np.asarray(ep["actions"]), low, high),
                             rewards=list(map(float, ep["rewards"])),
                             terminations=list(map(bool, ep["terminations"])),
                             truncations=list(map(bool, ep["truncations"])), infos={})
               for i, ep in enumerate(episodes)]
    tmp = Path(tempfile.mkdtemp(prefix=".contrl-tmp-", dir=root))
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(tmp)
    try:
        import minari
        gym_env = _minari_env_id(env_id, buffers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = minari.create_dataset_from_buffers(
                name, buffers, env=gym_env,
                observation_space=None if gym_env else _flat_space(env_id, buffers),
                action_space=None if gym_env else raw_action_space(env_id),
                algorithm_name=metadata.get("policy", "contrl"), author="contrl",
                author_email="none", code_permalink="contrl",
                description=metadata.get("description", "collected with contrl"),
                ref_min_score=ref_min, ref_max_score=ref_max,
                num_episodes_average_score=1)
            ds.storage.update_metadata({"contrl": {**metadata, "env_id": env_id,
                                                   "ref_min_score": ref_min,
                                                   "ref_max_score": ref_max}})
        sync_tree(tmp / name)
        os.replace(tmp / name, final)
        sync_dir(final.parent)
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous
        shutil.rmtree(tmp, ignore_errors=True)
    return final
