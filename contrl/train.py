"""Resolve an algorithm, build its configs (defaults < preset < overrides), and run it."""
from __future__ import annotations

import shutil
from pathlib import Path

from contrl import config as C
from contrl.envs import resolve_env_id
from contrl.errors import ContrlError
from contrl.loops.common import StopFlag
from contrl.loops.dagger import DAggerLoop
from contrl.loops.mopo import MOPOLoop
from contrl.loops.offline import OfflineLoop
from contrl.loops.offpolicy import OffPolicyLoop
from contrl.loops.onpolicy import OnPolicyLoop
from contrl.registry import resolve_algo
from contrl.resolve import build_configs, split_overrides  # noqa: F401 (also this module's API)
from contrl.run import (atomic_write_json, check_writable, new_run_dir, read_run_config,
                        remove_stale_temporaries)

# the training loop of each kind of algorithm
LOOPS = {
    "offpolicy": OffPolicyLoop,
    "onpolicy": OnPolicyLoop,
    "offline": OfflineLoop,
    "mopo": MOPOLoop,
    "dagger": DAggerLoop,
}

# fields that may change when a run is resumed (everything else must match the saved config)
RESUME_OVERRIDABLE = {"steps", "progress", "tensorboard", "wandb", "eval_every",
                      "checkpoint_every", "log_every", "stop_at_return", "video_every"}


def train(algo: str, env_id: str | None, overrides: dict, resume: str | None = None,
          use_preset: bool = True, run_dir: str | None = None) -> dict:
    """Train ``algo`` on ``env_id``; ``resume`` continues a saved run; ``run_dir`` names the
    new run's directory (default: ``<runs_dir>/<algo>-<env>-s<seed>-<time>``)."""
    _, agent_cls, kind = resolve_algo(algo)
    if resume:
        run_dir = Path(resume)
        saved = read_run_config(run_dir)
        if saved["algo"] != algo:
            raise ContrlError(f"{run_dir} is a {saved['algo']} run, not {algo}")
        if env_id is not None and resolve_env_id(env_id) != saved["run"]["env"]:
            raise ContrlError(f"{run_dir} trains {saved['run']['env']}, not {env_id}")
        blocker = resolve_algo(algo)[0].resume_blocker(saved["algo_config"])
        if blocker:
            raise ContrlError(f"{run_dir}: {blocker}")
        run_over, algo_over = split_overrides(algo, overrides)

        def norm(v):
            return list(v) if isinstance(v, tuple) else v

        saved_values = {**saved["algo_config"], **saved["run"]}
        changed = [k for k, v in {**run_over, **algo_over}.items()
                   if k not in RESUME_OVERRIDABLE and norm(saved_values.get(k)) != norm(v)]
        if changed:
            raise C.ConfigError(f"cannot change {', '.join(sorted(changed))} when resuming")
        run_cfg = C.build(C.RunConfig, {**saved["run"], **run_over})
        algo_cfg = C.build(resolve_algo(algo)[0], saved["algo_config"])
        run_cfg.validate()
        algo_cfg.validate()
        algo_cfg.check_run(run_cfg)
        remove_stale_temporaries(run_dir)
        created = None
    else:
        if env_id is None:
            raise ContrlError("an environment id is required (e.g. HalfCheetah-v5)")
        run_cfg, algo_cfg = build_configs(algo, env_id, overrides, use_preset)
        if run_dir is None:
            run_dir = created = new_run_dir(run_cfg.runs_dir, algo, run_cfg.env, run_cfg.seed)
        else:
            run_dir = Path(run_dir)
            if run_dir.exists() and any(run_dir.iterdir()):
                raise ContrlError(f"{run_dir} already exists and is not empty")
            created = None if run_dir.exists() else run_dir
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    # signals are watched from here on: a stop during set-up ends in a resumable checkpoint
    with StopFlag() as stop:
        try:
            check_writable(run_dir / "checkpoints")
            atomic_write_json(run_dir / "config.json", {
                "algo": algo, "run": C.to_dict(run_cfg), "algo_config": C.to_dict(algo_cfg),
            })
            loop = LOOPS[kind](run_cfg, algo_cfg, agent_cls, run_dir, resume=bool(resume),
                               algo=algo)
        except BaseException:  # a failed (or aborted) start of a new run leaves nothing behind
            if created is not None:
                shutil.rmtree(created, ignore_errors=True)
            raise
        return loop(stop)

