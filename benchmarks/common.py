"""Helpers shared by the benchmark scripts: train-or-resume, report headers, atomic writes,
progress.csv columns, plots, argparse types and rooflines (FLOPs of a compiled update, the
cores' matrix-product rate).

Scripts import it as ``from common import ...``: a script's directory is on sys.path when it
runs as ``python benchmarks/<script>.py``.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent  # benchmarks/


# ------------------------------------------------------------------------ atomic writes
def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` (creating its folder): readers see the old file or the new
    one, never a partial one."""
    from contrl.run import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj, indent: int = 2) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def copy_file(src: str | Path, dst: str | Path) -> None:
    """Copy ``src`` to ``dst`` atomically (small files: logs, configs)."""
    from contrl.run import atomic_write_bytes

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dst, Path(src).read_bytes())


# ---------------------------------------------------------------------------- reports
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """The machine in a few words: CPU model and cores, and JAX's backend when this process
    has imported JAX (a script that only reads results says nothing about accelerators)."""
    text = f"{cpu_model()}, {os.cpu_count()} cores"
    jax = sys.modules.get("jax")
    if jax is not None:
        try:
            backend = jax.default_backend()
            text += (", CPU only" if backend == "cpu"
                     else f", JAX on {backend} ({jax.devices()[0].device_kind})")
        except Exception:  # noqa: BLE001 - a description only
            pass
    return text


def command_line(script: str) -> str:
    """This run's command line, as Markdown code."""
    return "`" + shlex.join(["python", f"benchmarks/{script}", *sys.argv[1:]]) + "`"


def report_header(title: str, script: str, *, level: int = 1, minutes: bool = False,
                  settings: str | None = None) -> list[str]:
    """A report's first lines: title with today's date (and time with ``minutes``), the
    machine, the command that ran, then ``settings`` if given."""
    stamp = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M}" if minutes else \
        f"{datetime.now(timezone.utc):%Y-%m-%d}"
    lines = [f"{'#' * level} {title} ({stamp} UTC)", "",
             f"machine: {machine()}; command: {command_line(script)}", ""]
    return lines + ([settings, ""] if settings else [])


def write_report(out: Path, lines: list[str], table: list[dict]) -> None:
    """results.md (the markdown lines) and results.json (the table), then print the lines."""
    atomic_write_text(Path(out) / "results.md", "\n".join(lines) + "\n")
    atomic_write_json(Path(out) / "results.json", table)
    print("\n".join(lines))


def append_record(path: str | Path, lines: list[str], first: str = "") -> None:
    """Append a Markdown record (the lines, then a blank line) to ``path``, atomically; a new
    file starts with ``first``."""
    path = Path(path)
    previous = path.read_text() if path.exists() else first
    atomic_write_text(path, previous + "\n".join(lines) + "\n\n")


def emit(lines: list[str], out: str | Path | None) -> None:
    """Print the record and append it to ``out`` (Markdown) when given."""
    print("\n".join(lines) + "\n")
    if out:
        append_record(out, lines)


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


# ------------------------------------------------------------------------- rooflines
def best_rate(fn, args, repeats: int, per_call: int) -> float:
    """Calls of ``fn(*args)`` per second times ``per_call`` (best of ``repeats``, after one
    untimed call); ``fn`` returns something to block on."""
    import jax

    jax.block_until_ready(fn(*args))
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = max(best, per_call / (time.perf_counter() - t))
    return best


def flops(compiled) -> float:
    """Floating-point operations of a compiled program as XLA counts them (a ``lax.scan`` body
    is counted once: for a K-step update, the operations of one step)."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0))


def matmul_rate(rows: int, repeats: int) -> float:
    """GFLOP/s of 50 chained (rows x 256) @ (256 x 256) products with a tanh between."""
    import jax
    import jax.numpy as jnp

    x = jnp.full((rows, 256), 0.01, jnp.float32)
    w = jnp.full((256, 256), 0.01, jnp.float32)
    chain = jax.jit(lambda x, w: jax.lax.fori_loop(0, 50, lambda i, h: jnp.tanh(h @ w), x))
    return best_rate(chain, (x, w), repeats, 1) * 2 * rows * 256 * 256 * 50 / 1e9


# ----------------------------------------------------------------------- training runs
def finished_step(run: Path) -> int:
    """The step of a run's latest checkpoint; -1 when it has none."""
    from contrl.run import Checkpoint
    path = Path(run) / "checkpoints" / "latest.ckpt"
    return Checkpoint(path).meta.get("step", 0) if path.exists() else -1


def read_eval(run: Path) -> dict:
    path = Path(run) / "eval.json"
    return json.loads(path.read_text()) if path.exists() else {}


def env_folder(env: str) -> str:
    """An env id as part of a folder name (``dmc:x`` -> ``dmc_x``)."""
    return env.replace(":", "_")


def run_dir_for(root: Path, algo: str, env: str, seed: int) -> Path:
    """A benchmark's run directory for ``algo`` on ``env`` with ``seed``, as
    benchmarks/learning.py and benchmarks/make_datasets.py share them."""
    return Path(root) / f"{algo}-{env_folder(env)}-s{seed}"


def train_or_resume(algo: str, env: str, overrides: dict, run_dir: Path, steps: int | None,
                    progress: bool = False) -> dict:
    """Train ``algo`` on ``env`` in ``run_dir`` up to ``steps`` and return the run's last
    evaluation (its eval.json: mean_return, std_return, step, ...).

    A run whose latest checkpoint reached ``steps`` (or, with ``stop_at_return`` among the
    overrides, whose last evaluation reached it) is skipped. A run with a checkpoint is resumed
    with only ``steps`` and ``progress`` (everything else comes from its saved config). Else
    the run starts in ``run_dir`` with ``overrides``; what a run stopped before its first
    checkpoint left there is moved aside (``<name>.unfinished-<time>``), not deleted.
    ``steps=None`` means the preset's (a new run) or the saved config's (an existing one). A
    run a signal stopped ends the script (SystemExit), so a sweep never goes on with a
    half-done run."""
    from contrl.run import read_run_config, time_stamp
    from contrl.train import train

    run_dir = Path(run_dir)
    done = finished_step(run_dir)
    if done >= 0:
        saved = read_run_config(run_dir)["run"]
        target = steps if steps is not None else saved["steps"]
        last = read_eval(run_dir)
        stop_at = overrides.get("stop_at_return", saved.get("stop_at_return"))
        reached = stop_at is not None and last.get("mean_return", -np.inf) >= stop_at
        if done >= target or reached:
            log(f"done     {run_dir.name} (step {done}, eval {last.get('mean_return')})")
            return last
        log(f"resume   {run_dir.name} from step {done}")
        over = {"progress": progress, **({"steps": steps} if steps is not None else {})}
        out = train(algo, env, over, resume=str(run_dir))
    else:
        if run_dir.is_dir() and any(run_dir.iterdir()):  # stopped before its first checkpoint
            aside = run_dir.with_name(f"{run_dir.name}.unfinished-{time_stamp()}")
            run_dir.rename(aside)
            log(f"moved    {run_dir.name} (no checkpoint to resume from) to {aside.name}")
        log(f"start    {run_dir.name}")
        over = {"progress": progress, **overrides,
                **({"steps": steps} if steps is not None else {})}
        out = train(algo, env, over, run_dir=str(run_dir))
    if out.get("interrupted"):  # a signal stopped it: what follows would read a half-done run
        raise SystemExit(f"{run_dir.name} stopped at step {out['step']}; rerun to resume it")
    ev = out.get("eval") or read_eval(run_dir)
    score = ev.get("normalized_score")
    log(f"finished {run_dir.name}: step {out['step']} eval {ev.get('mean_return')}"
        + (f" normalized {score}" if score is not None else ""))
    return ev


def keep_evidence(run: Path, out: Path) -> None:
    """Copy a run's log, config and last evaluation to <out>/runs/<run name>."""
    keep = Path(out) / "runs" / Path(run).name
    for name in ("progress.csv", "config.json", "eval.json", "final_eval.json"):
        if (Path(run) / name).exists():
            copy_file(Path(run) / name, keep / name)


# ------------------------------------------------------------------------ progress.csv
def progress_csv(run: Path) -> Path:
    """A run directory's progress.csv (or ``run`` itself when it is the file)."""
    run = Path(run)
    return run / "progress.csv" if run.is_dir() else run


def read_progress(run: Path) -> list[dict]:
    with open(progress_csv(run)) as f:
        return list(csv.DictReader(f))


def column(rows: list[dict] | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the rows (or the run) that logged ``name``."""
    if not isinstance(rows, list):
        rows = read_progress(rows)
    pts = [(int(r["step"]), float(r[name])) for r in rows if r.get(name)]
    return (np.array([p[0] for p in pts], dtype=np.int64),
            np.array([p[1] for p in pts], dtype=np.float64))


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, ax, title: str, path: str | Path, xlabel: str = "environment steps",
                ylabel: str = "return") -> None:
    """Label, grid and legend a one-axes learning-curve figure, write it as PNG and close it."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_png(fig, path)


def write_png(fig, path: str | Path, dpi: int = 120) -> None:
    """Write ``fig`` as PNG (creating its folder) and close it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def mean_interval(values) -> tuple[float, float, float]:
    """The mean over seeds and its 95% bootstrap interval (2000 resamples, seed 0); with one
    value, that value three times."""
    from contrl.report import interval

    values = np.asarray(values, float)
    if len(values) == 1:
        return float(values[0]), float(values[0]), float(values[0])
    return interval(values, 2000, 0)


# ------------------------------------------------------------------------ comparisons
def run_interleaved(libs: list[str], repeats: int, run_one, after_repetition=None) -> dict:
    """``run_one(lib)`` for every library in turn, ``repeats`` times (interleaved, so machine
    noise hits every library alike; the order rotates by one each repetition, so a load that
    grows or falls during the run does not always hit the same library last); a library that
    is not installed is skipped."""
    libs = list(libs)
    results: dict[str, list[float]] = {lib: [] for lib in libs}
    for rep in range(repeats):
        shift = rep % len(libs) if libs else 0
        for lib in libs[shift:] + libs[:shift]:
            try:
                sps = run_one(lib)
            except ImportError as e:
                print(f"{lib}: not installed ({e}); skipped", file=sys.stderr)
                results.pop(lib)
                libs.remove(lib)
                continue
            results[lib].append(sps)
            print(f"rep {rep} {lib:12s} {sps:8.1f} steps/s", flush=True)
        if after_repetition is not None:
            after_repetition(rep)
    return results


# ------------------------------------------------------------------------ argparse types
def comma_list(text: str) -> list[str]:
    """argparse type: "a,b,c" -> ["a", "b", "c"]."""
    return [x for x in text.split(",") if x]


def int_list(text: str) -> list[int]:
    """argparse type: "0,1,2" -> [0, 1, 2]."""
    return [int(x) for x in comma_list(text)]
