"""Many runs from one command: a grid of algorithms x envs x seeds x config values, each an
ordinary run directory under one sweep directory.

Rerunning the same sweep continues it: finished runs are skipped, interrupted ones resumed
from their last checkpoint (``contrl train --resume``), missing ones started. Runs execute as
separate processes, each pinned to its own share of the cores (``--cores-per-run``), or as
Ray Tune trials on a Ray cluster (``contrl.sweep_ray``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from contrl import config as C
from contrl.errors import ContrlError
from contrl.loops.vmap_seeds import check_vmappable
from contrl.registry import resolve_algo
from contrl.run import DirLock, atomic_write_json, read_run_config, saved_step
from contrl.stopping import StopFlag
from contrl.resolve import build_configs, parse_seeds, resumed_configs

SWEEP_FILE = "sweep.json"

VMAP_SEEDS_DEFAULT = False
"""Whether a local sweep trains each cell's seeds in one process as one vmapped agent unless
told (--vmap-seeds / --no-vmap-seeds). Off: on a 2-core CPU, N seeds vmapped were not faster than
N pinned processes and used no less CPU time per env step
(benchmarks/vmap_seeds.py, benchmarks/results/vmap_seeds/README.md)."""


@dataclasses.dataclass(frozen=True)
class Trial:
    """One run of a sweep: what ``contrl train`` is given, and where its directory is."""

    algo: str
    env: str
    seed: int
    overrides: tuple[tuple[str, object], ...]
    """Config values of this run (the fixed ones and its point of the grid), in --set order."""
    name: str
    """The run directory's name inside the sweep directory."""
    steps: int = 0
    """Env steps the run trains for (its preset's or config's, or --steps)."""
    use_preset: bool = True
    """False: the run is started with --no-preset (the algorithm's defaults alone)."""

    @property
    def options(self) -> dict:
        return {**dict(self.overrides), "seed": self.seed}

    @property
    def cell(self) -> str:
        """The name of its (algo, env, grid point): the run directory's name without the seed."""
        return self.name.removesuffix(f"-s{self.seed}")

    def train_args(self, run_dir: Path, resume: bool) -> list[str]:
        """``contrl train`` arguments that start (or continue) this run in ``run_dir``."""
        if resume:  # to the sweep's steps, which may have grown since the run started
            return ["train", self.algo, "--resume", str(run_dir), "--no-progress",
                    "--steps", str(self.steps)]
        return ["train", self.algo, self.env, "--run-dir", str(run_dir), "--no-progress",
                *(() if self.use_preset else ("--no-preset",)), *option_flags(self.options)]


def name_part(text: str) -> str:
    """A --set value as part of a run directory's name: as given (':' as 'x'), or for a value
    that is a path (a dataset file, a run), its last part and a hash of the whole, so that the
    name is one folder and two paths never share it."""
    if "/" not in text and os.sep not in text and text.strip("."):
        return text.replace(":", "x")
    last = Path(text.rstrip("/" + os.sep)).name.replace(":", "x").strip(".") or "path"
    return f"{last}~{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def option_flags(options: dict) -> list[str]:
    """Command-line flags for config values (bools as --x / --no-x, tuples as several)."""
    out = []
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + k.replace("_", "-"))
        elif isinstance(v, (tuple, list)):
            out += [flag, *map(str, v)]
        elif v is not None:
            out += [flag, str(v)]
    return out


@dataclasses.dataclass(frozen=True)
class Job:
    """What one process runs: one trial, or seeds of one cell trained together as one vmapped
    agent (``contrl train --seeds``, or ``--resume`` with their run directories)."""

    trials: tuple[Trial, ...]
    resume: bool
    """Whether the trials continue saved runs (all at the same step) or start new ones."""

    @property
    def name(self) -> str:
        """The name of its log: the run's, or the cell's with the seeds."""
        if len(self.trials) == 1:
            return self.trials[0].name
        return f"{self.trials[0].cell}-s" + "_".join(str(t.seed) for t in self.trials)

    def train_args(self, sweep_dir: Path) -> list[str]:
        """The ``contrl train`` arguments of this job."""
        first = self.trials[0]
        if len(self.trials) == 1:
            return first.train_args(sweep_dir / first.name, self.resume)
        if self.resume:
            return ["train", first.algo, "--resume", *(str(sweep_dir / t.name) for t in self.trials),
                    "--no-progress", "--steps", str(first.steps)]
        return ["train", first.algo, first.env, "--seeds", ",".join(str(t.seed) for t in self.trials),
                "--run-dir", str(sweep_dir / f"{first.cell}-s{{seed}}"), "--no-progress",
                *(() if first.use_preset else ("--no-preset",)),
                *option_flags(dict(first.overrides))]


def plan_jobs(sweep_dir: Path, todo: list[Trial], together: set[str]) -> list[Job]:
    """One job per trial, except that the trials of a cell named in ``together`` that start
    from the same point (new, or resumed from the same step) form one vmapped job."""
    groups: dict[tuple, list[Trial]] = {}
    for t in todo:
        run_dir = sweep_dir / t.name
        resume = status(run_dir, t.steps) == "resume"
        key = ((t.cell, resume, saved_step(run_dir) if resume else 0) if t.cell in together
               else (t.name,))
        groups.setdefault(key, []).append(t)
    return [Job(tuple(ts), status(sweep_dir / ts[0].name, ts[0].steps) == "resume")
            for ts in groups.values()]


def _field_class(algo: str, name: str) -> type:
    for cls in (C.RunConfig, resolve_algo(algo)[0]):
        if name in {f.name for f in dataclasses.fields(cls)}:
            return cls
    raise C.ConfigError(f"--set {name}: unknown option for {algo} (see contrl train {algo} "
                        "--help)")


def _read_value(cls: type, name: str, text: str):
    tp, is_tuple, optional = C.base_type(C.field_types(cls)[name])
    if optional and text.lower() in ("none", "null"):
        return None
    if tp is bool and not is_tuple:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise C.ConfigError(f"--set {name}: expected true or false, got '{text}'")
        return text.lower() in ("true", "1", "yes")
    return C.coerce(cls, name, text.split(":") if is_tuple else text)


def parse_sets(algos: list[str], sets: list[str]) -> list[tuple[str, list[str]]]:
    """``["lr=3e-4,1e-3", "hidden=64:64"]`` -> [("lr", ["3e-4", "1e-3"]), ...]: each --set
    is a field and its values (one value: fixed for every run; several: an axis of the grid;
    tuple items are joined by ':'). Checked against every algorithm of the sweep."""
    out = []
    for s in sets:
        name, eq, values = s.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or not name or not values:
            raise C.ConfigError(f"--set '{s}': expected FIELD=VALUE[,VALUE...]")
        if name in dict(out):
            raise C.ConfigError(f"--set {name} is given twice; give its values once, "
                                "separated by commas")
        if name in ("seed", "env", "run_dir"):
            raise C.ConfigError(f"--set {name}: give seeds with --seeds and envs as the second "
                                "argument")
        texts = [v.strip() for v in values.split(",")]
        for algo in algos:
            cls = _field_class(algo, name)
            is_path = name in getattr(cls, "PATH_FIELDS", ())
            seen: dict = {}
            for t in texts:
                value = _read_value(cls, name, t)
                key = repr(C.resolved_path(value) if is_path else value)  # a.h5 and ./a.h5
                if key in seen:  # 1e-3 and 0.001: two runs of one setting, counted as two samples
                    raise C.ConfigError(f"--set {name}: '{seen[key]}' and '{t}' are the same "
                                        "value; give each value once")
                seen[key] = t
        out.append((name, texts))
    return out


def expand(algos: list[str], envs: list[str], seeds: list[int],
           sets: list[tuple[str, list[str]]], use_preset: bool = True,
           sweep_dir: Path | None = None) -> list[Trial]:
    """Every (algo, env, grid point, seed), each checked as ``contrl train`` would check it
    (unknown algorithm, env or field, invalid value: ConfigError/ContrlError); a run that has
    begun in ``sweep_dir`` is checked as its resume will check it (``check_resumes``), not as
    a new run (the checks of new runs may have changed since, or its input files moved)."""
    for a in algos:
        resolve_algo(a)
    axes = [(name, texts) for name, texts in sets if len(texts) > 1]
    trials = []
    for algo, env in itertools.product(algos, envs):
        for point in itertools.product(*[texts for _, texts in axes]):
            chosen = dict(zip([n for n, _ in axes], point))
            values = [(name, _read_value(_field_class(algo, name), name,
                                         chosen.get(name, texts[0])))
                      for name, texts in sets]
            label = "-".join(f"{n}{name_part(chosen[n])}" for n, _ in axes)
            for seed in seeds:
                opts = {**dict(values), "seed": seed}
                safe_env = env.replace(":", "_").replace("/", "_")
                name = f"{algo}-{safe_env}" + (f"-{label}" if label else "") + f"-s{seed}"
                begun = sweep_dir is not None and (sweep_dir / name / "config.json").is_file()
                run_cfg, _ = build_configs(algo, env, opts, use_preset,  # refuse a bad run now
                                           new_run=not begun)
                trials.append(Trial(algo, env, seed, tuple(values), name, run_cfg.steps,
                                    use_preset))
    names = [t.name for t in trials]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ContrlError(f"the sweep names two runs {twice} (an algorithm, env or --set value "
                          "given twice?)")
    return trials


def grid_of(spec: dict) -> dict:
    """What a sweep runs, its steps and seeds aside (a sweep may be extended to more steps or
    more seeds)."""
    return {k: v for k, v in spec.items() if k not in ("steps", "seeds")}


def spec_hash(spec: dict) -> str:
    """Eight hex digits naming a sweep by what it runs."""
    return hashlib.sha1(json.dumps(grid_of(spec), sort_keys=True).encode()).hexdigest()[:8]


def status(run_dir: Path, steps: int) -> str:
    """'new' (nothing there), 'done' (its latest checkpoint is at ``steps``, and its online
    phase's at ``online_steps`` where it has one) or 'resume'."""
    if not (run_dir / "config.json").is_file():
        return "new"
    if saved_step(run_dir) < steps:
        return "resume"
    try:
        online = read_run_config(run_dir)["algo_config"].get("online_steps") or 0
    except ContrlError:  # a damaged config.json: check_resumes names it
        return "resume"
    # without an online phase (online_steps 0) the missing <run>/online reads as step 0: done
    return "done" if saved_step(run_dir / "online") >= online else "resume"


def check_resumes(root: Path, trials: list[Trial]) -> None:
    """Refuse the sweep before any run starts where a run to be continued would refuse to
    resume to its steps (e.g. IQL past its actor's decay, a damaged config.json)."""
    for t in trials:
        try:
            resumed_configs(t.algo, None, {"steps": t.steps}, root / t.name)
        except (ContrlError, C.ConfigError) as e:
            raise ContrlError(f"{t.name} cannot be continued: {e}") from None


def last_step(run_dir: Path) -> int:
    """The step of progress.csv's last row (0 if none yet): cheap, from the file's tail."""
    path = run_dir / "progress.csv"
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        first = line.split(",", 1)[0]
        if first.isdigit():
            return int(first)
    return 0


def prepare(sweep_dir: Path, spec: dict) -> None:
    """Create the sweep directory, or check that an existing one holds this same sweep; its
    record lists every seed the directory has been given."""
    spec = recorded_spec(sweep_dir, spec)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "logs").mkdir(exist_ok=True)
    atomic_write_json(sweep_dir / SWEEP_FILE, spec)


def recorded_spec(sweep_dir: Path, spec: dict) -> dict:
    """What ``sweep_dir``'s record will hold with this sweep (refused where the directory
    holds another sweep or is not a sweep's); writes nothing."""
    path = sweep_dir / SWEEP_FILE
    if path.is_file():
        try:
            saved = json.loads(path.read_text())
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError included
            raise ContrlError(f"{path} is damaged ({type(e).__name__}); it records the sweep "
                              "this directory holds: restore it or give a new --dir") from None
        if not isinstance(saved, dict) or not isinstance(saved.get("seeds", []), list):
            raise ContrlError(f"{path} is not a sweep record (a JSON object); restore it or "
                              "give a new --dir")
        if grid_of(saved) == grid_of(spec):
            spec = {**spec, "seeds": sorted({*saved.get("seeds", []), *spec["seeds"]})}
        elif any(sweep_dir.glob("*/config.json")):
            raise ContrlError(f"{sweep_dir} holds another sweep ({path}); give a new --dir")
        # else: a sweep none of whose runs started (all refused): this one takes its place
    elif sweep_dir.exists() and not sweep_dir.is_dir():
        raise ContrlError(f"--dir {sweep_dir} is not a directory")
    elif (sweep_dir / "config.json").is_file():
        raise ContrlError(f"--dir {sweep_dir} is a run directory, not a sweep's; give a new --dir")
    return spec


def core_slots(jobs: int, cores_per_run: int) -> list[list[int]]:
    """The CPU set of each concurrent run: disjoint groups of ``cores_per_run`` cores (wrapping
    round when more runs than core groups are asked for)."""
    cores = sorted(os.sched_getaffinity(0))
    groups = max(1, len(cores) // cores_per_run)
    return [cores[(i % groups) * cores_per_run:(i % groups + 1) * cores_per_run] or cores
            for i in range(jobs)]


def child_env(sweep_dir: Path, cores: list[int]) -> dict:
    env = dict(os.environ)
    # one compilation cache for the whole sweep: the runs compile the same agents
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(sweep_dir / ".jax_cache"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    env["CONTRL_CORES"] = ",".join(map(str, cores))
    return env


class LocalRunner:
    """Runs trials as ``contrl train`` processes, ``jobs`` at once, each pinned to its cores,
    with one Rich display for the whole sweep. Ctrl-C (or SIGTERM) is passed on to the runs,
    which save a checkpoint; rerunning the sweep continues them."""

    def __init__(self, sweep_dir: Path, jobs: int, cores_per_run: int, show: bool = True):
        self.sweep_dir = sweep_dir
        self.slots = core_slots(jobs, cores_per_run)
        self.show = show
        self.stop_signal: int | None = None

    def _launch(self, job: Job, cores: list[int]) -> subprocess.Popen:
        args = [sys.executable, "-m", "contrl.cli", *job.train_args(self.sweep_dir)]
        with (self.sweep_dir / "logs" / f"{job.name}.log").open("a") as log:
            log.write(f"$ {' '.join(args[1:])}  (cores {cores})\n")
            log.flush()  # the child writes after this line through its own descriptor
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                    env=child_env(self.sweep_dir, cores), start_new_session=True)

    def _done_steps(self, job: Job) -> int:
        return sum(last_step(self.sweep_dir / t.name) for t in job.trials)

    def __call__(self, todo: list[Job]) -> dict[str, int]:
        """Run the jobs; returns each trial's exit status (its job's) by name."""
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        bar = Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                       disable=not self.show)
        runs = sum(len(j.trials) for j in todo)
        total = bar.add_task(f"sweep ({runs} runs)",
                             total=sum(t.steps for j in todo for t in j.trials),
                             completed=sum(self._done_steps(j) for j in todo))
        pending = list(todo)
        running: dict[int, tuple[Job, subprocess.Popen, int]] = {}  # slot -> job, task
        codes: dict[str, int] = {}
        told: set[int] = set()  # runs already passed the stop signal
        try:
            with StopFlag() as stop, bar:  # the first signal is passed on; a second kills
                while (pending and not stop.raised) or running:
                    for slot in range(len(self.slots)):
                        if slot not in running and pending and not stop.raised:
                            job = pending.pop(0)
                            proc = self._launch(job, self.slots[slot])
                            task = bar.add_task(job.name, total=sum(t.steps for t in job.trials),
                                                completed=self._done_steps(job))
                            running[slot] = (job, proc, task)
                    time.sleep(0.5)
                    done_steps = 0
                    for slot, (job, proc, task) in list(running.items()):
                        if stop.raised and proc.pid not in told:
                            told.add(proc.pid)  # once: a second signal would stop it unsaved
                            try:
                                os.killpg(proc.pid, stop.signum)
                            except ProcessLookupError:
                                pass
                        bar.update(task, completed=self._done_steps(job))
                        if proc.poll() is not None:
                            codes.update((t.name, proc.returncode) for t in job.trials)
                            bar.remove_task(task)
                            del running[slot]
                    for t in (t for j in todo for t in j.trials):
                        done_steps += (t.steps if codes.get(t.name) == 0
                                       else last_step(self.sweep_dir / t.name))
                    bar.update(total, completed=done_steps)
            self.stop_signal = stop.signum
        except KeyboardInterrupt:  # second signal: stop the runs at once
            for _, proc, _ in running.values():
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise
        return codes


def vmapped_cells(trials: list[Trial], vmap_seeds: bool | None, use_preset: bool) -> set[str]:
    """The cells whose seeds train together (vmapped): with ``vmap_seeds`` every cell of two
    or more seeds (an algorithm or config that cannot be vmapped is refused); by default
    (None) those of them that can be, as VMAP_SEEDS_DEFAULT says; with False none."""
    if vmap_seeds is False or (vmap_seeds is None and not VMAP_SEEDS_DEFAULT):
        return set()
    cells: dict[str, list[Trial]] = {}
    for t in trials:
        cells.setdefault(t.cell, []).append(t)
    together = set()
    for cell, ts in cells.items():
        if len(ts) < 2 and not vmap_seeds:  # asked for: refused even with one seed
            continue
        run_cfg, algo_cfg = build_configs(ts[0].algo, ts[0].env, ts[0].options, use_preset,
                                          new_run=False)  # expand has checked each run
        try:
            check_vmappable(ts[0].algo, run_cfg, algo_cfg)
        except C.ConfigError:
            if vmap_seeds:
                raise
            continue
        if len(ts) > 1:
            together.add(cell)
    return together


def sweep(algos: list[str], envs: list[str], seeds: str, sets: list[str], sweep_dir: str | None,
          jobs: int | None = None, cores_per_run: int = 1, use_preset: bool = True,
          ray: bool = False, show: bool = True, dry_run: bool = False,
          vmap_seeds: bool | None = None) -> dict:
    """Expand the grid, skip finished runs, run the rest; returns a summary (the sweep's
    directory, the runs by state, their logs, and exit statuses). ``vmap_seeds``: train each
    cell's seeds in one process as one vmapped agent (None: VMAP_SEEDS_DEFAULT; locally only)."""
    if cores_per_run <= 0:
        raise C.ConfigError(f"cores_per_run must be positive, got {cores_per_run}")
    if jobs is not None and jobs <= 0:
        raise C.ConfigError(f"jobs must be positive, got {jobs}")
    seed_list = parse_seeds(seeds)
    parsed = parse_sets(algos, sets)
    spec = {"algos": algos, "envs": envs, "seeds": seed_list,
            "sets": [[n, v] for n, v in parsed if n != "steps"], "preset": use_preset,
            "steps": dict(parsed).get("steps")}
    root = Path(sweep_dir) if sweep_dir else Path("sweeps") / f"sweep-{spec_hash(spec)}"
    trials = expand(algos, envs, seed_list, parsed, use_preset, root)
    use_ray = ray or bool(os.environ.get("RAY_ADDRESS"))
    if use_ray and vmap_seeds:
        raise ContrlError("--vmap-seeds trains seeds together in local processes; through Ray "
                          "every seed is its own trial (drop --vmap-seeds)")
    n_cores = len(os.sched_getaffinity(0))
    if not use_ray and cores_per_run > n_cores:  # a Ray cluster's nodes may have more
        raise C.ConfigError(f"cores_per_run ({cores_per_run}) is more than the {n_cores} "
                            "cores this process may use")
    together = set() if use_ray else vmapped_cells(trials, vmap_seeds, use_preset)
    states = {t.name: status(root / t.name, t.steps) for t in trials}
    summary = {"dir": str(root), "runs": len(trials),
               "done_before": sorted(n for n, s in states.items() if s == "done"),
               "todo": [t.name for t in trials if states[t.name] != "done"]}
    recorded_spec(root, spec)  # this same sweep's folder (or a new one), before its runs
    check_resumes(root, [t for t in trials if states[t.name] == "resume"])
    if dry_run:
        return summary
    root.mkdir(parents=True, exist_ok=True)
    with DirLock(root, "contrl sweep"):  # one sweep at a time starts this folder's runs
        prepare(root, spec)
        # again, now that no other sweep runs here (one may have ended since)
        states = {t.name: status(root / t.name, t.steps) for t in trials}
        todo = [t for t in trials if states[t.name] != "done"]
        if use_ray:
            from contrl.sweep_ray import run_with_ray
            codes = run_with_ray(root, todo, cores_per_run, jobs)
            summary["logs"] = {t.name: str(root / "logs" / f"{t.name}.log") for t in todo}
        else:
            jobs = jobs or max(1, n_cores // cores_per_run)
            runner = LocalRunner(root, jobs, cores_per_run, show)
            planned = plan_jobs(root, todo, together)
            summary["logs"] = {t.name: str(root / "logs" / f"{j.name}.log")
                               for j in planned for t in j.trials}
            codes = runner(planned)
            if runner.stop_signal is not None:
                summary["signal"] = runner.stop_signal
    summary["failed"] = {n: c for n, c in codes.items() if c not in (0, 130, 143)}
    summary["finished"] = sorted(n for n, c in codes.items() if c == 0)
    return summary
