"""Several seeds in one process (vmapped) vs one process per seed: total env steps/s.

SAC with its default hyperparameters (2x256, batch 256, one gradient step per env step, 8 per
update call) on HalfCheetah-v5, N seeds trained either

- ``separate``: N ``contrl train`` processes at once, pinned one core each, round-robin, as
  ``contrl sweep --no-vmap-seeds --jobs N`` pins them;
- ``vmapped``: one ``contrl train --seeds`` process (one stacked agent) given every core;
- ``vmapped-1core``: the same pinned to a single core (what one sweep job gets by default).

Each seed takes ``--warmup`` uniform random steps, then ``--skip`` steps (compilation), then
``--measure`` timed steps; a configuration's figure is the sum over its seeds of
measure / (wall time of the timed steps), from each run's progress.csv. The configurations
run one after the other, interleaved over ``--repeats`` rounds so that the load of a shared
machine falls on them alike; the load average is recorded before and after each.

    python benchmarks/vmap_seeds.py [--seeds 1,2,4] [--repeats 2] [--measure 1500]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import (ROOT, atomic_write_json, atomic_write_text, command_line, int_list,
                    report_header)

ENV = "HalfCheetah-v5"
MODES = ("separate", "vmapped", "vmapped-1core")


def rate(run_dir: Path, start: int, end: int) -> float:
    """Env steps/s of one run between two logged steps."""
    with (run_dir / "progress.csv").open() as f:
        t = {int(r["step"]): float(r["time"]) for r in csv.DictReader(f)}
    return (end - start) / (t[end] - t[start])


def run_config(mode: str, n: int, args, tmp: Path) -> dict:
    from contrl.sweep import child_env, core_slots, last_step

    start, total = args.warmup + args.skip, args.warmup + args.skip + args.measure
    flags = ["--steps", str(total), "--learning-starts", str(args.warmup), "--eval-every", "0",
             "--eval-episodes", "1", "--log-every", "50", "--checkpoint-every", str(10 * total),
             "--buffer-size", "100000", "--no-tensorboard", "--no-progress"]
    base = [sys.executable, "-m", "contrl.cli", "train", "sac", ENV]
    where = tmp / f"{mode}-{n}-{time.monotonic_ns()}"
    if mode == "separate":
        slots = core_slots(n, 1)
        commands = [(base + ["--seed", str(i), "--run-dir", str(where / f"s{i}"), *flags], slots[i])
                    for i in range(n)]
    else:
        cores = core_slots(1, 1)[0] if mode == "vmapped-1core" else sorted(os.sched_getaffinity(0))
        commands = [(base + ["--seeds", f"0-{n - 1}", "--run-dir", str(where / "s{seed}"), *flags],
                     cores)]
    load_before = os.getloadavg()[0]
    procs = [subprocess.Popen(cmd, env=child_env(tmp, cores), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for cmd, cores in commands]
    # CPU time of the processes (all their threads) while every seed is in its timed window:
    # from when the last seed has logged its start step to when the first has logged the end
    cpu = {}
    runs = [where / f"s{i}" for i in range(n)]
    while any(p.poll() is None for p in procs) and "end" not in cpu:
        steps = [last_step(r) for r in runs]
        if "start" not in cpu and min(steps) >= start:
            cpu["start"] = sum(cpu_seconds(p.pid) for p in procs), sum(steps)
        elif "start" in cpu and max(steps) >= total - 250:
            cpu["end"] = sum(cpu_seconds(p.pid) for p in procs), sum(steps)
        time.sleep(0.1)
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"{mode} x{n} failed (exit {p.returncode})")
    rates = [rate(r, start, total) for r in runs]
    out = {"mode": mode, "seeds": n, "total_steps_per_sec": total_rate(mode, rates),
           "per_seed": rates, "load_before": load_before, "load_after": os.getloadavg()[0]}
    if "end" in cpu:  # the env steps of all seeds between the readings (by their logged rows)
        (c0, s0), (c1, s1) = cpu["start"], cpu["end"]
        out["cpu_ms_per_step"] = 1000 * (c1 - c0) / (s1 - s0)
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def total_rate(mode: str, rates: list[float]) -> float:
    """Env steps/s of all seeds together. Separate runs add up. Vmapped seeds step in
    lockstep, so all move at seed 0's rate: the later seeds' timed windows also hold the
    earlier seeds' final evaluations (each seed logs its last row, then evaluates, before the
    next seed logs its own), which seed 0's window does not."""
    return float(sum(rates)) if mode == "separate" else len(rates) * rates[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int_list, default=[1, 2, 4], help="seed counts, e.g. 1,2,4")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--skip", type=int, default=500)
    ap.add_argument("--measure", type=int, default=1500)
    ap.add_argument("--out", default=str(ROOT / "results" / "vmap_seeds"))
    ap.add_argument("--report-only", action="store_true", help="rewrite README.md from the "
                    "results.json in --out (its rounds, loads and settings) without measuring")
    args = ap.parse_args()
    modes = args.modes.split(",")
    if args.report_only:
        saved = json.loads((Path(args.out) / "results.json").read_text())
        uptime_before, uptime_after, results = saved["uptime_before"], saved["uptime_after"], \
            saved["results"]
        measured_by = saved["command"]
        vars(args).update(saved["settings"])
        for res in results:  # the totals by this version's total_rate
            res["total_steps_per_sec"] = total_rate(res["mode"], res["per_seed"])
    else:
        uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                for n in args.seeds:
                    for mode in modes:
                        res = run_config(mode, n, args, Path(tmp))
                        res["repeat"] = r
                        print(res, flush=True)
                        results.append(res)
        uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        measured_by = command_line("vmap_seeds.py")
    import jax  # noqa: F401 - so that the header names the backend
    lines = report_header("Seeds vmapped in one process vs one process per seed", "vmap_seeds.py",
                          minutes=True, settings=(
                              f"SAC defaults (2x256, batch 256, update_every 8, 1 gradient step "
                              f"per env step) on {ENV}; per seed {args.warmup} random steps, "
                              f"{args.skip} steps not timed (compilation), {args.measure} timed; "
                              f"total env steps/s of all seeds together, median over "
                              f"{args.repeats} interleaved rounds (each round's figures in "
                              f"results.json)."))
    loads = [x[k] for x in results for k in ("load_before", "load_after")]
    lines += [f"measured by: {measured_by}", "", f"load before: `{uptime_before}`", "",
              f"load after: `{uptime_after}`", "",
              f"1-minute load average at the start and end of each configuration: "
              f"{min(loads):.1f} to {max(loads):.1f} (2 cores; other workers shared them)", "",
              "| seeds | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for n in args.seeds:
        cells = []
        for mode in modes:
            v = [x["total_steps_per_sec"] for x in results if x["mode"] == mode and x["seeds"] == n]
            cells.append(f"{np.median(v):.0f} ({', '.join(f'{x:.0f}' for x in v)})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "Total env steps/s. Cells: median (each round). `separate`: N processes "
              "pinned one core each, round-robin over the cores; `vmapped`: one process, all "
              "cores; `vmapped-1core`: one process, one core.", "",
              "CPU time per env step (ms, all seeds' processes and threads together, while every "
              "seed was in its timed window; it depends much less than steps/s on how the shared "
              "cores were divided among the workers):", "",
              "| seeds | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for n in args.seeds:
        cells = []
        for mode in modes:
            v = [x["cpu_ms_per_step"] for x in results
                 if x["mode"] == mode and x["seeds"] == n and "cpu_ms_per_step" in x]
            cells.append(f"{np.median(v):.1f} ({', '.join(f'{x:.1f}' for x in v)})" if v else "-")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    settings = {k: getattr(args, k) for k in ("seeds", "repeats", "warmup", "skip", "measure")}
    atomic_write_json(Path(args.out) / "results.json", {
        "settings": settings, "command": measured_by, "uptime_before": uptime_before,
        "uptime_after": uptime_after, "results": results})
    atomic_write_text(Path(args.out) / "README.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
