"""Resolve an algorithm, build its configs (defaults < preset < overrides), and run it."""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
from pathlib import Path

from contrl import config as C
from contrl.agents import REGISTRY
from contrl.envs import resolve_env_id
from contrl.errors import ContrlError, UnknownIdError
from contrl.run import atomic_write_json, new_run_dir

# the training loop of each kind of algorithm (imported when used)
LOOPS = {
    "offpolicy": "contrl.loops.offpolicy:train_offpolicy",
    "onpolicy": "contrl.loops.onpolicy:train_onpolicy",
    "offline": "contrl.loops.offline:train_offline",
    "dagger": "contrl.loops.dagger:train_dagger",
}

# fields that may change when a run is resumed (everything else must match the saved config)
RESUME_OVERRIDABLE = {"steps", "progress", "tensorboard", "wandb", "eval_every",
                      "checkpoint_every", "log_every", "stop_at_return"}


def resolve_algo(name: str):
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UnknownIdError(f"unknown algorithm '{name}' (known: {', '.join(REGISTRY)}){hint}")
    return REGISTRY[name]


def split_overrides(algo: str, overrides: dict) -> tuple[dict, dict]:
    algo_cls = resolve_algo(algo)[0]
    run_names = {f.name for f in dataclasses.fields(C.RunConfig)}
    algo_names = {f.name for f in dataclasses.fields(algo_cls)}
    run_over, algo_over = {}, {}
    for k, v in overrides.items():
        if k in run_names:
            run_over[k] = v
        elif k in algo_names:
            algo_over[k] = v
        else:
            raise C.ConfigError(f"unknown option '{k}' for {algo}")
    return run_over, algo_over


def build_configs(algo: str, env_id: str, overrides: dict, use_preset: bool = True):
    """Defaults, then the preset for (algo, env) if any, then the explicit overrides."""
    algo_cls = resolve_algo(algo)[0]
    env_id = resolve_env_id(env_id)
    preset = C.preset_for(algo, env_id) if use_preset else {}
    run_pre, algo_pre = split_overrides(algo, preset)
    run_over, algo_over = split_overrides(algo, overrides)
    run_cfg = C.build(C.RunConfig, {**run_pre, **run_over, "env": env_id})
    algo_cfg = C.build(algo_cls, {**algo_pre, **algo_over})
    run_cfg.validate()
    algo_cfg.validate()
    algo_cfg.check_run(run_cfg)
    return run_cfg, algo_cfg


def load_run_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ContrlError(f"{run_dir} is not a contrl run directory (no config.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ContrlError(f"{path} is not valid JSON ({e})") from None


def train(algo: str, env_id: str | None, overrides: dict, resume: str | None = None,
          use_preset: bool = True, run_dir: str | None = None) -> dict:
    """Train ``algo`` on ``env_id``; ``resume`` continues a saved run; ``run_dir`` names the
    new run's directory (default: ``<runs_dir>/<algo>-<env>-s<seed>-<time>``)."""
    _, agent_cls, kind = resolve_algo(algo)
    if resume:
        run_dir = Path(resume)
        saved = load_run_config(run_dir)
        if saved["algo"] != algo:
            raise ContrlError(f"{run_dir} is a {saved['algo']} run, not {algo}")
        if env_id is not None and resolve_env_id(env_id) != saved["run"]["env"]:
            raise ContrlError(f"{run_dir} trains {saved['run']['env']}, not {env_id}")
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
    else:
        if env_id is None:
            raise ContrlError("an environment id is required (e.g. HalfCheetah-v5)")
        run_cfg, algo_cfg = build_configs(algo, env_id, overrides, use_preset)
        if run_dir is None:
            run_dir = new_run_dir(run_cfg.runs_dir, algo, run_cfg.env, run_cfg.seed)
        else:
            run_dir = Path(run_dir)
            if run_dir.exists() and any(run_dir.iterdir()):
                raise ContrlError(f"{run_dir} already exists and is not empty")
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "config.json", {
        "algo": algo, "run": C.to_dict(run_cfg), "algo_config": C.to_dict(algo_cfg),
    })
    module, func = LOOPS[kind].split(":")
    loop = getattr(importlib.import_module(module), func)
    return loop(run_cfg, algo_cfg, agent_cls, run_dir, resume=bool(resume), algo=algo)


def run_configs(run_dir: str | Path):
    """(RunConfig, algorithm config) saved in a run directory."""
    saved = load_run_config(Path(run_dir))
    return (C.build(C.RunConfig, saved["run"]),
            C.build(resolve_algo(saved["algo"])[0], saved["algo_config"]))


def load_agent(run_dir: str | Path, which: str = "best"):
    """The agent saved in a run directory (``best`` or ``latest``) and the run's configs."""
    from contrl.envs import make_env
    from contrl.run import Checkpoint

    run_dir = Path(run_dir)
    run_cfg, algo_cfg = run_configs(run_dir)
    agent_cls = resolve_algo(load_run_config(run_dir)["algo"])[1]
    path = run_dir / "checkpoints" / f"{which}.ckpt"
    if which == "best" and not path.exists():
        path = run_dir / "checkpoints" / "latest.ckpt"
    ckpt = Checkpoint(path)
    env = make_env(run_cfg.env, run_cfg.action_repeat)
    template = agent_cls.create(algo_cfg, env.observation_space.shape[0], env.action_space.shape[0],
                                run_cfg.seed, num_envs=run_cfg.num_envs)
    env.close()
    return ckpt.restore_agent(template), run_cfg, algo_cfg, ckpt.meta
