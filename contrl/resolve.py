"""A new run's configuration: defaults, then the preset for (algorithm, env), then the
explicit values, checked together."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from contrl import config as C
from contrl.envs import resolve_env_id
from contrl.envs.make import default_eval_episodes, flattening_keys, has_dict_observations
from contrl.errors import ContrlError
from contrl.registry import resolve_algo
from contrl.run import read_run_config, saved_step


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


# fields that may change when a run is resumed (everything else must match the saved config)
RESUME_OVERRIDABLE = {"steps", "online_steps", "progress", "tensorboard", "wandb", "eval_every",
                      "checkpoint_every", "log_every", "stop_at_return", "video_every"}


def resumed_configs(algo: str, env_id: str | None, overrides: dict, run_dir: Path):
    """The configs of the saved run in ``run_dir`` to continue it, with the ``overrides``
    allowed on resume (RESUME_OVERRIDABLE) applied; anything else changed is refused. Only
    reads (the run may be training in another process: ``train.launch`` holds it first)."""
    saved = read_run_config(run_dir)
    if saved["algo"] != algo:
        raise ContrlError(f"{run_dir} is a {saved['algo']} run, not {algo}")
    if env_id is not None and resolve_env_id(env_id) != saved["run"]["env"]:
        raise ContrlError(f"{run_dir} trains {saved['run']['env']}, not {env_id}")
    algo_cls = resolve_algo(algo)[0]
    blocker = algo_cls.resume_blocker(saved["algo_config"])
    if blocker:
        raise ContrlError(f"{run_dir}: {blocker}")
    run_over, algo_over = split_overrides(algo, overrides)

    paths = algo_cls.PATH_FIELDS

    def norm(k, v):  # a path given again, relative or not, is the same option
        return C.resolved_path(v) if k in paths else list(v) if isinstance(v, tuple) else v

    saved_values = {**C.with_former_defaults(algo_cls, saved["algo_config"]),
                    **C.with_former_defaults(C.RunConfig, saved["run"])}
    changed = [k for k, v in {**run_over, **algo_over}.items()
               if k not in RESUME_OVERRIDABLE and norm(k, saved_values.get(k)) != norm(k, v)]
    if changed:
        raise C.ConfigError(f"cannot change {', '.join(sorted(changed))} when resuming")
    run_cfg = C.build(C.RunConfig, {**saved["run"], **run_over}, saved=True)
    online = (saved["algo_config"].get("online_steps") or 0, algo_over.get("online_steps"))
    if online[1] is not None and online[1] != online[0] and 0 in online:
        raise C.ConfigError(f"--online-steps can grow an online phase on resume, not add or "
                            f"remove one (this run was started with online_steps {online[0]}: "
                            "what trains before it depends on that)")
    allowed = {k: v for k, v in algo_over.items() if k in RESUME_OVERRIDABLE}  # online_steps
    algo_cfg = C.build(algo_cls, {**saved["algo_config"], **allowed}, saved=True)
    run_cfg.validate()
    algo_cfg.validate()
    algo_cfg.check_run(run_cfg)
    done = saved_step(run_dir)
    if run_cfg.steps > done and (run_dir / "online" / "checkpoints" / "latest.ckpt").exists():
        raise ContrlError(f"{run_dir}: its offline phase ended at step {done} and its online "
                          "phase has begun, which starts from that agent: --steps cannot grow "
                          "now (start a new run with the steps wanted)")
    online_done = saved_step(run_dir / "online")
    if getattr(algo_cfg, "online_steps", 0) < online_done:
        raise ContrlError(f"{run_dir}: its online phase is already at step {online_done}, past "
                          f"--online-steps {algo_cfg.online_steps}: give --online-steps above "
                          f"{online_done} to train it further (the run is unchanged)")
    if run_cfg.steps < done:
        raise ContrlError(f"{run_dir} is already at step {done}, past --steps {run_cfg.steps}: "
                          f"give --steps above {done} to train it further (the run is unchanged)")
    return run_cfg, algo_cfg


def build_configs(algo: str, env_id: str, overrides: dict, use_preset: bool = True,
                  new_run: bool = True):
    """Defaults, then the preset for (algo, env) if any, then the explicit overrides.
    ``new_run`` False: skip the checks for starting a run (of the options given and the files
    read at the start), e.g. for a sweep's run that has begun and will be resumed."""
    algo_cls = resolve_algo(algo)[0]
    env_id = resolve_env_id(env_id)
    preset = C.preset_for(algo, env_id) if use_preset else {}
    run_pre, algo_pre = split_overrides(algo, preset)
    run_over, algo_over = split_overrides(algo, overrides)
    run_cfg = C.build(C.RunConfig, {**run_pre, **run_over, "env": env_id})
    algo_cfg = C.build(algo_cls, {**algo_pre, **algo_over})
    if env_id.startswith("dmc:"):  # dm_control's dicts are flattened whole, in sorted key order
        if run_cfg.obs_keys:
            raise C.ConfigError(f"--obs-keys does not apply to {env_id}: contrl flattens all of a "
                                "dm_control task's observation keys (the -P and -V variants keep "
                                "the position-like or the velocity keys)")
    else:
        if not has_dict_observations(env_id) and run_cfg.obs_keys:
            raise C.ConfigError(f"--obs-keys picks keys of dict observations; {env_id}'s are a "
                                "flat vector")
        run_cfg.obs_keys = flattening_keys(env_id, run_cfg.obs_keys)  # recorded in config.json
    if run_cfg.eval_episodes is None:
        run_cfg.eval_episodes = default_eval_episodes(env_id)  # recorded in config.json
    algo_cfg.resolve_paths()  # recorded absolute in config.json
    if new_run:
        algo_cfg.record_sources(set(overrides))  # read once, when the run starts
        algo_cfg.check_given(overrides)
    try:
        run_cfg.validate()
        algo_cfg.validate()
        algo_cfg.check_run(run_cfg)
        if new_run:
            algo_cfg.check_new_run(run_cfg)
    except C.ConfigError as e:  # say which of the values it names the user did not give
        named = [k for k in preset if k not in overrides  # as messages name fields: "k (v)", "k must"
                 and re.search(rf"(?<![\w-]){k}(?= \(| must)", str(e))]
        if not named:
            raise
        sets = ", ".join(f"{k} {preset[k]}" for k in named)
        raise C.ConfigError(f"{e} ({sets}: the {algo} preset for {env_id}; "
                            f"--{named[0].replace('_', '-')} overrides it)") from None
    return run_cfg, algo_cfg


MAX_SEEDS = 1000
"""Seeds one --seeds may name (a range past it is a typo, and would fill the memory)."""


def parse_seeds(text: str) -> list[int]:
    """``0-4`` -> 0..4, ``0,3,7`` -> those, ``2`` -> [2]; mixing is allowed (``0-2,9``)."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ContrlError(f"seed range '{part}' is empty (its end is below its start)")
                if hi - lo >= MAX_SEEDS:  # checked before the list is built
                    raise ContrlError(f"seed range '{part}' holds {hi - lo + 1} seeds; at most "
                                      f"{MAX_SEEDS} at once")
                seeds += range(lo, hi + 1)
            else:
                seeds.append(int(part))
        except ValueError:
            raise ContrlError(f"cannot read seeds '{text}': give e.g. 0-4 or 0,1,5") from None
    if any(s < 0 for s in seeds):
        raise ContrlError(f"seeds must be >= 0, got {text}")
    if len(set(seeds)) != len(seeds):
        raise ContrlError(f"seeds '{text}' repeat a seed")
    return seeds
