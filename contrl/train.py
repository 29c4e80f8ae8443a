"""Resolve an algorithm, build its configs (defaults < preset < overrides), and run it."""
from __future__ import annotations

import shutil
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from contrl import config as C
from contrl.errors import ContrlError
from contrl.loops.common import Loop
from contrl.loops.dagger import DAggerLoop
from contrl.loops.mopo import MOPOLoop
from contrl.loops.offline import OfflineLoop
from contrl.loops.offpolicy import OffPolicyLoop
from contrl.loops.onpolicy import OnPolicyLoop
from contrl.loops.vmap_seeds import SeedGroup, check_vmappable
from contrl.registry import resolve_algo
from contrl.resolve import (RESUME_OVERRIDABLE, build_configs, resumed_configs,  # noqa: F401
                            split_overrides)  # (also this module's API)
from contrl.run import (DirLock, atomic_write_bytes, atomic_write_json, check_writable, new_run_dir,
                        read_run_config, remove_stale_temporaries)
from contrl.stopping import Interrupted, StopFlag

# the training loop of each kind of algorithm
LOOPS = {
    "offpolicy": OffPolicyLoop,
    "onpolicy": OnPolicyLoop,
    "offline": OfflineLoop,
    "mopo": MOPOLoop,
    "dagger": DAggerLoop,
}

def open_run_dir(run_cfg, algo: str, run_dir: str | None) -> tuple[Path, list[Path]]:
    """A new run's directory (``run_dir``, new or empty, or a fresh one under runs_dir) and
    the folders this made, for removal if the start fails: the run's own directory (unless it
    was there, empty), then the folders above it that it made, nearest first."""
    if run_dir is None:
        above = _missing_folders(Path(run_cfg.runs_dir))
        path = new_run_dir(run_cfg.runs_dir, algo, run_cfg.env, run_cfg.seed)
        return path, [path, *above]
    path = Path(run_dir)
    if path.exists() and any(path.iterdir()):
        raise ContrlError(f"{path} already exists and is not empty")
    made = _missing_folders(path) if not path.exists() else []
    try:
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ContrlError(f"cannot make the run directory --run-dir {path} ({e.strerror})") from None
    return path, made


def _missing_folders(path: Path) -> list[Path]:
    """``path`` and the folders above it that do not exist yet, nearest first."""
    return [p for p in (path.absolute(), *path.absolute().parents) if not p.exists()]


def remove_dirs(created: list[tuple[Path, list[Path]]]) -> None:
    """Remove what failed starts made (``created``: each run's directory, which was new or
    empty, with the folders its start made): all in the run's directory, then the folders
    made, nearest first, while they are empty (another run may be in one). A ``--run-dir``
    the user made stays, empty as it was."""
    for run_dir, made in created:
        if run_dir.is_dir():
            for child in run_dir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty (another run's), or gone
                break


def launch(algo: str, runs: list, algo_cfg, created: list[tuple[Path, list[Path]]],
           make_loop: Callable[[], Loop]):
    """Write each run's config.json (``runs``: (RunConfig, run directory) pairs), set the loop
    up with ``make_loop()`` and run it, each run's directory held (``DirLock``). Signals are
    watched from the start, so a stop during set-up ends in a resumable checkpoint; a failed
    (or aborted) start removes ``created``, and a resumed run's config.json is put back as it
    was."""
    with StopFlag() as stop, ExitStack() as held:
        previous: dict[Path, bytes] = {}
        try:
            if stop.raised:  # a signal during the imports: nothing is changed yet
                raise Interrupted(stop.signum)
            for _, run_dir in runs:  # every run held before any is changed
                check_writable(run_dir / "checkpoints")
                held.enter_context(DirLock(run_dir))
            for run_cfg, run_dir in runs:
                path = run_dir / "config.json"
                if path.exists():  # a resumed run: what a write killed mid-way left goes
                    previous[path] = path.read_bytes()
                    remove_stale_temporaries(run_dir)
                atomic_write_json(path, {
                    "algo": algo, "run": C.to_dict(run_cfg), "algo_config": C.to_dict(algo_cfg),
                })
            loop = make_loop()
        except BaseException:
            for path, data in previous.items():
                atomic_write_bytes(path, data)
            remove_dirs(created)
            raise
        return loop(stop)


def prepare_rendering(env_id: str | None, overrides: dict, resume: list[str]) -> None:
    """A dm_control run that records videos chooses its GL backend before anything imports
    dm_control, which fixes its own at import (resolving a dmc: id imports it; with MUJOCO_GL
    unset it takes GLFW, which fails without a display at the first video, after training)."""
    saved = [read_run_config(Path(r))["run"] for r in resume]
    envs = [env_id or ""] + [str(run.get("env", "")) for run in saved]
    if "video_every" in overrides:
        wanted = overrides["video_every"]
    else:
        wanted = any(run.get("video_every") for run in saved)
    from contrl.envs.dmc import PREFIX
    if wanted and any(e.startswith(PREFIX) for e in envs):
        from contrl.video import choose_gl_backend
        choose_gl_backend()


def train(algo: str, env_id: str | None, overrides: dict, resume: str | None = None,
          use_preset: bool = True, run_dir: str | None = None) -> dict:
    """Train ``algo`` on ``env_id``; ``resume`` continues a saved run; ``run_dir`` names the
    new run's directory (default: ``<runs_dir>/<algo>-<env>-s<seed>-<time>``)."""
    _, agent_cls, kind = resolve_algo(algo)
    prepare_rendering(env_id, overrides, [resume] if resume else [])
    if resume:
        run_dir = Path(resume)
        run_cfg, algo_cfg = resumed_configs(algo, env_id, overrides, run_dir)
        created = []
    else:
        if env_id is None:
            raise ContrlError("an environment id is required (e.g. HalfCheetah-v5)")
        run_cfg, algo_cfg = build_configs(algo, env_id, overrides, use_preset)
        run_dir, made = open_run_dir(run_cfg, algo, run_dir)
        created = [(run_dir, made)]
    return launch(algo, [(run_cfg, run_dir)], algo_cfg, created,
                  lambda: LOOPS[kind](run_cfg, algo_cfg, agent_cls, run_dir,
                                      resume=bool(resume), algo=algo))


def train_seeds(algo: str, env_id: str | None, overrides: dict, seeds: list[int] | None = None,
                resume: list[str] | None = None, use_preset: bool = True,
                run_dir: str | None = None) -> dict:
    """Train several seeds of one off-policy config in this process as one vmapped agent
    (``contrl.loops.vmap_seeds``): new runs of ``seeds``, or the saved runs ``resume`` continued
    together. Each seed has its own ordinary run directory: ``run_dir``, with ``{seed}`` in
    it standing for the seed (default: one ``<runs_dir>/<algo>-<env>-s<seed>-<time>`` each)."""
    _, agent_cls, _ = resolve_algo(algo)
    prepare_rendering(env_id, overrides, resume or [])
    if resume:
        if seeds:
            raise ContrlError("--seeds names new runs; --resume continues existing ones")
        if len({Path(r).resolve() for r in resume}) != len(resume):
            raise ContrlError("--resume names a run twice")
        configs = [resumed_configs(algo, env_id, overrides, Path(r)) for r in resume]
    else:
        if env_id is None:
            raise ContrlError("an environment id is required (e.g. HalfCheetah-v5)")
        if "seed" in overrides:
            raise C.ConfigError("give the seeds with --seeds alone, not --seed too")
        if run_dir is not None and len(seeds) > 1 and "{seed}" not in run_dir:
            raise C.ConfigError("--run-dir for several seeds must hold {seed}, e.g. "
                                "runs/sac-s{seed}")
        configs = [build_configs(algo, env_id, {**overrides, "seed": s}, use_preset)
                   for s in seeds]
    run_cfg, algo_cfg = configs[0]
    check_vmappable(algo, run_cfg, algo_cfg)
    first = C.to_dict(run_cfg)
    for other_run, other_algo in configs[1:]:
        differ = sorted(k for k, v in C.to_dict(other_run).items()
                        if k not in ("seed", "seed_streams", "runs_dir") and first[k] != v)
        differ += sorted(k for k, v in C.to_dict(other_algo).items()
                         if C.to_dict(algo_cfg)[k] != v)
        if differ:
            raise C.ConfigError(f"runs trained together must differ in their seed alone; "
                                f"these differ in {', '.join(differ)}")
    created: list[tuple[Path, list[Path]]] = []
    if resume:
        dirs = [Path(r) for r in resume]
    else:
        try:
            dirs = []
            for (cfg, _), seed in zip(configs, seeds):
                path, made = open_run_dir(cfg, algo, None if run_dir is None
                                          else run_dir.replace("{seed}", str(seed)))
                dirs.append(path)
                created.append((path, made))
        except BaseException:
            remove_dirs(created)
            raise
    runs = [(cfg, d) for (cfg, _), d in zip(configs, dirs)]
    return launch(algo, runs, algo_cfg, created,
                  lambda: SeedGroup(runs, algo_cfg, agent_cls, resume=bool(resume), algo=algo))
