"""A sweep's trials through Ray Tune: on the cluster at RAY_ADDRESS, or a local Ray instance.

Each trial runs the same ``contrl train`` command as a local sweep, in the same run directory
(the sweep directory must be on a file system the Ray workers share), so a trial resumes
from its run directory exactly as locally, and a rerun of the sweep skips finished runs.
Ray is an optional extra: ``pip install 'contrl[ray]'``.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from pathlib import Path

from contrl.errors import ContrlError
from contrl.sweep import Trial, child_env, status


def _ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ContrlError("--ray needs Ray: pip install 'contrl[ray]' (or ray[tune])") from None
    return ray, tune


def check_address(address: str) -> None:
    """Fail fast, with one line, when RAY_ADDRESS names a head node nobody answers at."""
    if address in ("", "auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ContrlError(f"RAY_ADDRESS '{address}' is not host:port")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise ContrlError(f"cannot reach the Ray cluster at RAY_ADDRESS={address} "
                          f"({e.strerror or e})") from None


def run_trial(config: dict) -> dict:
    """One Tune trial: the trial's ``contrl train`` command, its output in the sweep's log."""
    spec = config["spec"]
    sweep_dir = Path(spec["sweep_dir"])
    trial = Trial(**{**spec["trial"], "overrides": tuple(map(tuple, spec["trial"]["overrides"]))})
    run_dir = sweep_dir / trial.name
    resume = status(run_dir, trial.steps) == "resume"
    args = [sys.executable, "-m", "contrl.cli", *trial.train_args(run_dir, resume)]
    env = child_env(sweep_dir, sorted(os.sched_getaffinity(0)))
    with (sweep_dir / "logs" / f"{trial.name}.log").open("a") as log:
        log.write(f"$ {' '.join(args[1:])}  (ray)\n")
        log.flush()
        code = subprocess.run(args, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    return {"returncode": code}


def run_with_ray(sweep_dir: Path, todo: list[Trial], cores_per_run: int = 1,
                 jobs: int | None = None) -> dict[str, int]:
    """Run the trials as Tune trials; each trial's exit status by name."""
    ray, tune = _ray()
    address = os.environ.get("RAY_ADDRESS", "")
    check_address(address)
    if not ray.is_initialized():
        try:
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ContrlError(f"cannot start or join Ray (RAY_ADDRESS={address or 'unset'}): "
                              f"{str(e).splitlines()[0]}") from None
    if not todo:
        return {}
    sweep_dir = Path(sweep_dir).resolve()
    space = [{"sweep_dir": str(sweep_dir), "trial": dataclasses.asdict(t)} for t in todo]
    tuner = tune.Tuner(
        tune.with_resources(run_trial, {"cpu": cores_per_run}),
        param_space={"spec": tune.grid_search(space)},
        tune_config=tune.TuneConfig(max_concurrent_trials=jobs),
        run_config=tune.RunConfig(name="tune", storage_path=str(sweep_dir / "ray"),
                                  verbose=0),
    )
    results = tuner.fit()
    codes = {}
    for r in results:
        name = r.config["spec"]["trial"]["name"]
        codes[name] = int(r.metrics.get("returncode", 1)) if r.error is None else 1
    return codes
