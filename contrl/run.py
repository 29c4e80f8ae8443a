"""Run directories, atomic checkpoints, CSV/TensorBoard/W&B logging and the progress bar."""
from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable

import flax.serialization
import jax
import numpy as np

from contrl import serialize
from contrl.errors import CheckpointError, ContrlError

_WRITERS = itertools.count()  # TensorBoard writers this process has opened

CHECKPOINT_FORMAT = "contrl-checkpoint-1"
try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None
_UMASK = os.umask(0)
os.umask(_UMASK)


# ---------------------------------------------------------------------- run directory
def time_stamp() -> str:
    """The local time as run folders name it: 20261205-224001."""
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def new_run_dir(runs_dir: str, algo: str, env_id: str, seed: int) -> Path:
    root = Path(runs_dir)
    if (root.exists() and not root.is_dir()) or (root.is_symlink() and not root.exists()):
        raise ContrlError(f"--runs-dir {root} is not a directory" + (
            " (a link to nothing)" if root.is_symlink() else ""))
    base = root / f"{algo}-{env_id.replace(':', '_').replace('/', '_')}-s{seed}-{time_stamp()}"
    # mkdir itself claims the name: two runs started in the same second (a sweep, a script
    # launching runs side by side) get -1, -2, ... instead of one of them failing
    path, i = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            (path / "checkpoints").mkdir()
            return path
        except FileExistsError:
            path, i = Path(f"{base}-{i}"), i + 1
        except OSError as e:
            raise ContrlError(f"cannot create a run directory in {root} ({e.strerror})") from None


def check_writable(directory: Path) -> None:
    """Make ``directory`` if it is missing (a resumed run whose checkpoints/ was removed starts
    over, as one with an empty checkpoints/ does), and refuse, before any training, one where
    checkpoints cannot be written."""
    try:
        directory.mkdir(exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        raise ContrlError(f"cannot write in {directory} ({e.strerror})") from None


class DirLock:
    """An exclusive hold on a run's (or a sweep's) directory while this process trains it: a
    second contrl process on the same run would interleave its checkpoints and progress.csv
    with the first one's, and a second sweep would start the same runs again. The operating
    system lets go when the process ends, however it ends (no stale lock to clear by hand)."""

    FILE = ".lock"

    def __init__(self, directory: Path, holder: str = "contrl process"):
        self.directory, self.holder, self._file = Path(directory), holder, None

    def __enter__(self) -> "DirLock":
        if fcntl is None:  # no advisory locks here (not POSIX): nothing to hold
            return self
        path = self.directory / self.FILE
        try:
            f = open(path, "a+")
        except PermissionError:  # another user's .lock in a shared folder: held read-only
            try:
                f = open(path)
            except OSError as e:
                raise ContrlError(f"cannot open {path} ({e.strerror})") from None
        except OSError as e:
            raise ContrlError(f"cannot write in {self.directory} ({e.strerror})") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip()
            f.close()
            who = f"another {self.holder}" + (f" (pid {pid})" if pid.isdigit() else "")
            raise ContrlError(f"{self.directory} is in use by {who}: wait for it to end, or "
                              "stop it (Ctrl-C saves a checkpoint) and try again") from None
        except OSError as e:  # a file system without locks (some NFS, Lustre, FUSE mounts)
            f.close()
            print(f"note: {self.directory} cannot be locked here ({e.strerror}): make sure no "
                  "other contrl process uses it", file=sys.stderr)
            return self
        if f.writable():
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
        self._file = f
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def remove_stale_temporaries(run_dir: Path) -> list[Path]:
    """Delete the temporary files that a write killed mid-way left in a run directory (the
    file it was replacing is intact: writes are atomic). Returns what was removed."""
    removed = []
    # anywhere in the run (checkpoints/, videos/, dynamics/, an online phase's folder):
    # atomic_write's ``.<name>.<random>.tmp`` and a video's ``.<name>.tmp.<mp4|gif>``
    for p in [*run_dir.rglob(".*.tmp"), *run_dir.rglob(".*.tmp.*")]:
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def is_online_phase(path: Path) -> bool:
    """Whether ``path`` is an offline run's online phase, ``<run>/online`` (it keeps no
    config.json: its run's, with ``online_steps`` env steps, is the one it trains with)."""
    return (path.name == "online" and path.is_dir() and not (path / "config.json").exists()
            and (path.parent / "config.json").is_file())


def read_run_config(run_dir: Path) -> dict:
    """The configuration a run saved (config.json: algo, run, algo_config), as a dict."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        if not Path(run_dir).exists():
            raise ContrlError(f"{run_dir} is not a contrl run directory (it does not exist)")
        if is_online_phase(Path(run_dir)):
            raise ContrlError(f"{run_dir} is the online phase of the run "
                              f"{Path(run_dir).parent}: --resume that run to continue it")
        raise ContrlError(f"{run_dir} is not a contrl run directory (no config.json)")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ContrlError(f"{path} is not valid JSON ({e})") from None
    missing = [k for k in ("algo", "run", "algo_config") if not isinstance(saved, dict)
               or k not in saved]
    if missing or not isinstance(saved["run"], dict) or not isinstance(saved["algo_config"], dict):
        raise ContrlError(f"{path} is not a contrl run configuration "
                          f"(missing or malformed: {', '.join(missing) or 'run/algo_config'})")
    if not isinstance(saved["algo"], str) or not isinstance(saved["run"].get("env"), str):
        # every run saves both: read without them, a run would be taken for another
        raise ContrlError(f"{path} is not a contrl run configuration (its algo and run.env "
                          "must be names)")
    return saved


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file in the same directory, fsync, then rename it over
    ``path``: readers see the old file or the new one, never a partial one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    sync_dir(path.parent)  # the rename itself survives a power cut


def sync_dir(path: Path) -> None:
    """fsync a directory, so that the names just made or replaced in it are on disk (where
    the file system allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory: the rename is still atomic
    finally:
        os.close(fd)


def sync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (before renaming it into place)."""
    for d, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(d, name), "rb") as f:
                os.fsync(f.fileno())
        sync_dir(Path(d))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def online_phase_settings(online_steps: int) -> dict:
    """How an offline run's online phase changes its run settings."""
    return {"steps": online_steps, "stop_at_return": None}


def saved_config(run_dir: Path) -> dict:
    """The configuration saved in a run directory; for an offline run's online phase
    (``<run>/online``) its run's, as that phase trains (``online_steps`` env steps)."""
    run_dir = Path(run_dir)
    if is_online_phase(run_dir):
        saved = read_run_config(run_dir.parent)
        online = saved["algo_config"].get("online_steps")
        if type(online) is int and online > 0:
            return {**saved, "run": {**saved["run"], **online_phase_settings(online)}}
    return read_run_config(run_dir)


# ------------------------------------------------------------------------ checkpoints
def save_checkpoint(path: Path, agent, meta: dict, arrays: dict | None = None,
                    state: dict | None = None) -> None:
    """One file (an uncompressed .npz zip) holding the agent, metadata, optional numpy
    arrays (e.g. the replay buffer) and an optional JSON-encoded state (envs, RNGs).
    Written atomically: a crash mid-write leaves the previous file intact."""
    payload = {
        "format": np.frombuffer(CHECKPOINT_FORMAT.encode(), np.uint8),
        "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
        "agent": np.frombuffer(flax.serialization.to_bytes(agent), np.uint8),
    }
    if state is not None:
        payload["state"] = np.frombuffer(serialize.dumps(state).encode(), np.uint8)
    payload.update(arrays or {})
    atomic_write(path, lambda f: np.savez(f, **payload))  # streamed: no second copy in memory


def _fill_missing(saved, current):
    if not (isinstance(saved, dict) and isinstance(current, dict)):
        return saved
    return {k: _fill_missing(saved[k], v) if k in saved else v for k, v in current.items()}


class Checkpoint:
    """A checkpoint file opened lazily: the agent can be read without loading the buffer."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"no checkpoint at {self.path}")
        try:
            self._npz = np.load(self.path, allow_pickle=False)
            fmt = bytes(self._npz["format"]).decode()
            self.meta = json.loads(bytes(self._npz["meta"]).decode())
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            why = "not an npz archive" if "pickled" in str(e) else e  # numpy's hint misleads here
            raise CheckpointError(f"{self.path} is not a readable contrl checkpoint ({why})") from None
        if fmt != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{self.path} has format '{fmt}', expected '{CHECKPOINT_FORMAT}'")

    def restore_agent(self, template):
        """The saved agent, in the structure of ``template``. Fields that the checkpoint lacks
        (added to the agent after it was written) keep the template's initial values."""
        try:
            saved = flax.serialization.msgpack_restore(bytes(self._npz["agent"]))
            current = flax.serialization.to_state_dict(template)
            merged = _fill_missing(saved, current)
            for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(merged),
                                    jax.tree_util.tree_leaves(current)):
                if np.shape(a) != np.shape(b):
                    raise ValueError(f"{jax.tree_util.keystr(path)} has shape {np.shape(a)}, "
                                     f"expected {np.shape(b)}")
            return flax.serialization.from_state_dict(template, merged)
        except (ValueError, KeyError, TypeError, EOFError, OSError, zipfile.BadZipFile) as e:
            raise CheckpointError(
                f"{self.path}: agent does not match this config ({type(e).__name__}: {e})"
            ) from None

    def state(self) -> dict:
        try:
            if "state" not in self._npz.files:
                raise CheckpointError(
                    f"{self.path} is an exported policy (no resumable state): resume the run "
                    "it was exported from; this copy evaluates and collects")
            return serialize.loads(bytes(self._npz["state"]).decode())
        except (KeyError, ValueError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"{self.path} holds no resumable state ({e})") from None

    def resumable(self) -> bool:
        """Whether it holds a run's resumable state (an exported policy does not)."""
        try:
            return "state" in self._npz.files
        except (ValueError, OSError, zipfile.BadZipFile):
            return False

    def save_policy(self, path: Path) -> None:
        """Write this checkpoint's agent and metadata alone to ``path`` (atomically): no
        arrays and no resumable state, so a policy to evaluate or collect from, not a run to
        resume (a resume from it says it is an exported policy)."""
        try:
            payload = {k: self._npz[k] for k in ("format", "meta", "agent")}
        except (KeyError, ValueError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"{self.path}: corrupted checkpoint ({e})") from None
        atomic_write(Path(path), lambda f: np.savez(f, **payload))

    def arrays(self, prefix: str) -> dict:
        try:
            return {k: self._npz[k] for k in self._npz.files if k.startswith(prefix)}
        except (ValueError, zipfile.BadZipFile) as e:
            raise CheckpointError(f"{self.path}: corrupted arrays ({e})") from None


# ---------------------------------------------------------------------------- logging
BASE_COLUMNS = ("step", "time", "steps_per_sec", "episodes", "episode_return",
                "episode_length", "episode_success", "eval_return", "eval_std",
                "eval_success_rate")


def complete_lines(path: Path) -> tuple[list[str], bool]:
    """The lines of a progress log (newlines kept), less a last one without its newline (a
    row being written, or cut by a crash, is not a value), and whether there was one."""
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    cut = bool(lines) and not lines[-1].endswith("\n")
    return (lines[:-1] if cut else lines), cut


def _resume_csv(path: Path, step: int, columns: tuple[str, ...]) -> None:
    """Rewrite progress.csv (atomically) without the rows logged after ``step``, and with the
    header ``columns`` if it had other ones (a run resumed by a newer contrl): its rows keep
    their values under their own column names."""
    try:
        lines, cut = complete_lines(path)
    except UnicodeDecodeError:
        raise ContrlError(f"{path} is not a text progress log; move it aside to resume the run "
                          "with a new one") from None

    def logged_by_then(line: str) -> bool:  # a row of a step up to ``step``
        first = line.split(",", 1)[0]
        return first.isdigit() and int(first) <= step
    keep = lines[:1] + [line for line in lines[1:] if logged_by_then(line)]
    header = next(csv.reader(lines[:1]), [])
    if tuple(header) != columns:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()  # rows with none of the columns (another file's) are left out
        writer.writerows(row for row in csv.DictReader(keep) if row.keys() & set(columns))
        atomic_write_bytes(path, out.getvalue().encode())
    elif cut or len(keep) < len(lines):
        atomic_write_bytes(path, "".join(keep).encode())


class Logger:
    """progress.csv always; TensorBoard by default; Weights & Biases when asked for."""

    def __init__(self, run_dir: Path, metric_names: tuple[str, ...], tensorboard: bool,
                 wandb_config: dict | None = None, resume_step: int | None = None):
        """``resume_step``: the step of the checkpoint a resumed run starts from; rows the
        interrupted run logged after it are dropped, so the resumed rows replace them."""
        self.columns = BASE_COLUMNS + tuple(metric_names)
        path = run_dir / "progress.csv"
        append = resume_step is not None and path.exists()
        if append:
            _resume_csv(path, resume_step, self.columns)
        self._file = path.open("a" if append else "w", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=self.columns)
        if not append:
            self._csv.writeheader()
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter
            # a resumed run marks its first new step: TensorBoard then hides what the
            # interrupted run wrote past its checkpoint (as progress.csv drops those rows)
            # the event file's name holds the second it was opened: the suffix keeps a writer
            # opened in the same second (a quick resume) from truncating an earlier one's file
            self._tb = SummaryWriter(str(run_dir / "tb"), purge_step=None if resume_step is None
                                     else resume_step + 1,
                                     filename_suffix=f".{os.getpid()}.{next(_WRITERS)}")
        self._wandb = None
        if wandb_config is not None:
            try:
                import wandb
            except ImportError:
                raise ContrlError("--wandb needs the wandb package: pip install wandb") from None
            # one W&B run per run directory, however often it is resumed
            run_id = hashlib.blake2b(str(run_dir.resolve()).encode(), digest_size=8).hexdigest()
            self._wandb = wandb.init(project="contrl", name=run_dir.name, config=wandb_config,
                                     dir=str(run_dir), id=run_id, resume="allow")

    def log(self, row: dict) -> None:
        row = {k: (None if v is None else (round(v, 6) if isinstance(v, float) else v))
               for k, v in row.items() if k in self.columns}
        self._csv.writerow(row)
        self._file.flush()
        step = row["step"]
        scalars = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))
                   and v is not None and math.isfinite(v)}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def log_image(self, tag: str, image, step: int) -> None:
        """An RGB image (H x W x 3 uint8) in TensorBoard (and W&B), e.g. a video's frames."""
        if self._tb is not None:
            self._tb.add_image(tag, image, step, dataformats="HWC")
        if self._wandb is not None:
            import wandb
            self._wandb.log({tag: wandb.Image(image)}, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


# ------------------------------------------------------------------------ progress bar
@dataclass
class Progress:
    """A Rich progress bar with steps/s, last evaluation return and time remaining."""

    total: int
    start: int
    enabled: bool = True

    def __post_init__(self):
        self._bar = None
        if self.enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress
            self._bar = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[sps]:>6.0f} steps/s"),
                TextColumn("eval {task.fields[last_eval]}"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            )
            self._task = self._bar.add_task("train", total=self.total, completed=self.start,
                                            sps=0.0, last_eval="-")
            self._bar.start()

    def update(self, step: int, sps: float, last_eval: float | None = None) -> None:
        if self._bar is not None:
            fields = {"sps": sps}
            if last_eval is not None:
                fields["last_eval"] = f"{last_eval:.1f}"
            self._bar.update(self._task, completed=step, **fields)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class RateMeter:
    """Steps per second over the interval since the last call."""

    def __init__(self, step: int):
        self._t, self._step = time.perf_counter(), step

    def __call__(self, step: int) -> float:
        t = time.perf_counter()
        rate = (step - self._step) / max(t - self._t, 1e-9)
        self._t, self._step = t, step
        return rate


def saved_step(run_dir: Path) -> int:
    """The step of a run's latest checkpoint (0 if it has none, or an unreadable one: resume
    reports that)."""
    latest = Path(run_dir) / "checkpoints" / "latest.ckpt"
    if latest.is_file():
        try:
            return Checkpoint(latest).meta.get("step", 0)
        except ContrlError:
            pass
    return 0
