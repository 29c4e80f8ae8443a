"""Learning runs of a peer library (sbx or Stable-Baselines3) written as contrl run directories,
so that `contrl report` puts them beside contrl's own runs (issue 18's parity at equal steps).

The peer gets contrl's resolved settings for the same (algorithm, env) -- defaults and preset:
network widths, learning rate, batch, buffer, discount, tau, random warm-up steps, and TD3's
noises and policy delay -- with one gradient step per env step (the peers' standard loop).
Evaluation matches contrl's: ``eval_episodes`` deterministic episodes every ``eval_every`` env
steps on a separate env instance seeded apart from the training env. Each run directory holds
``config.json`` (algo ``<lib>-<algo>``, the settings used) and ``progress.csv`` (step, time,
eval_return, eval_std); a run whose last evaluation is at ``--steps`` is skipped when the
command is run again. Every ``--checkpoint-every`` env steps (at an evaluation) the peer's
model, optimizers and replay buffer are saved under ``checkpoint/``, so an interrupted run
continues from there when the command is run again. That resume is not exact, as contrl's is:
the episode in progress starts over and the random streams are not restored.

    taskset -c 1 python benchmarks/peer_runs.py --lib sbx --algos sac --envs HalfCheetah-v5 \\
        --seeds 0-4 --steps 100000 --dir DIR
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import importlib.metadata
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np

from common import atomic_write_json, atomic_write_text, comma_list, read_progress


def contrl_settings(algo: str, env_id: str) -> tuple[dict, dict]:
    """contrl's resolved run and algorithm settings for (algo, env): defaults, then preset."""
    from contrl.resolve import build_configs

    run_cfg, algo_cfg = build_configs(algo, env_id, {})
    return dataclasses.asdict(run_cfg), dataclasses.asdict(algo_cfg)


def peer_library(lib: str):
    """The peer's module and the keyword arguments its models always get here."""
    if lib == "sb3":
        return importlib.import_module("stable_baselines3"), {"device": "cpu"}
    return importlib.import_module("sbx"), {}


def make_model(lib: str, algo: str, env, cfg: dict, seed: int):
    """The peer's model with contrl's settings."""
    peer, extra = peer_library(lib)
    if algo == "sac":
        extra.update(ent_coef=f"auto_{cfg['init_alpha']}" if cfg["autotune_alpha"]
                     else cfg["init_alpha"])
        if cfg["target_entropy"] is not None:
            extra["target_entropy"] = cfg["target_entropy"]
    else:
        from stable_baselines3.common.noise import NormalActionNoise
        n = env.action_space.shape[0]
        extra.update(action_noise=NormalActionNoise(np.zeros(n), cfg["exploration_noise"]
                                                    * np.ones(n)),
                     policy_delay=cfg["policy_delay"], target_policy_noise=cfg["policy_noise"],
                     target_noise_clip=cfg["noise_clip"])
    return getattr(peer, algo.upper())(
        "MlpPolicy", env, learning_rate=cfg["lr"], buffer_size=cfg["buffer_size"],
        learning_starts=cfg["learning_starts"], batch_size=cfg["batch_size"], tau=cfg["tau"],
        gamma=cfg["gamma"], train_freq=1, gradient_steps=1,
        policy_kwargs={"net_arch": list(cfg["hidden"])}, seed=seed, verbose=0, **extra)


def evaluate(model, env, episodes: int, seed: int) -> tuple[float, float]:
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, r, term, trunc, _ = env.step(action)
            total += float(r)
            done = term or trunc
        returns.append(total)
    return float(np.mean(returns)), float(np.std(returns))


def finished(run_dir: Path, steps: int) -> bool:
    rows = read_progress(run_dir) if (run_dir / "progress.csv").is_file() else []
    return bool(rows) and int(rows[-1]["step"]) >= steps


def save_checkpoint(model, run_dir: Path, step: int, elapsed: float) -> None:
    """Model and replay buffer into checkpoint/step_<step>/, then checkpoint/state.json names
    it (written last, atomically), then older step folders go: a run killed at any point
    keeps one complete checkpoint."""
    root = run_dir / "checkpoint"
    folder = root / f"step_{step}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    model.save(folder / "model.zip")
    model.save_replay_buffer(folder / "buffer.pkl")
    atomic_write_json(root / "state.json", {"step": step, "time": elapsed,
                                           "folder": folder.name})
    for old in root.glob("step_*"):
        if old != folder:
            shutil.rmtree(old)


def load_checkpoint(lib: str, algo: str, env, run_dir: Path):
    """(model, step, elapsed seconds) from the run's checkpoint, or None if it has none."""
    state_path = run_dir / "checkpoint" / "state.json"
    if not state_path.is_file():
        return None
    state = json.loads(state_path.read_text())
    folder = run_dir / "checkpoint" / state["folder"]
    peer, extra = peer_library(lib)
    model = getattr(peer, algo.upper()).load(folder / "model.zip", env=env, **extra)
    model.load_replay_buffer(folder / "buffer.pkl")
    return model, state["step"], state["time"]


def train_one(lib: str, algo: str, env_id: str, seed: int, steps: int, run_dir: Path,
              eval_every: int | None, eval_episodes: int | None,
              checkpoint_every: int) -> None:
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    run, cfg = contrl_settings(algo, env_id)
    eval_every = eval_every or run["eval_every"]
    eval_episodes = eval_episodes or run["eval_episodes"]
    if checkpoint_every <= 0 or checkpoint_every % eval_every:
        raise SystemExit(f"--checkpoint-every must be a positive multiple of the evaluation "
                         f"interval {eval_every}, got {checkpoint_every}")
    env, eval_env = gym.make(env_id), gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    resumed = load_checkpoint(lib, algo, env, run_dir)
    if resumed:
        model, start, elapsed = resumed
        # progress.csv is written before every checkpoint, so it is there
        rows = [r for r in read_progress(run_dir) if int(r["step"]) <= start]
        print(f"{run_dir.name}: resumed from step {start}", flush=True)
    else:
        model, start, elapsed, rows = make_model(lib, algo, env, cfg, seed), 0, 0.0, []
    run_dir.mkdir(parents=True, exist_ok=True)
    version = importlib.metadata.version("sbx-rl" if lib == "sbx" else "stable-baselines3")
    atomic_write_json(run_dir / "config.json", {
        "algo": f"{lib}-{algo}",
        "run": {"env": env_id, "seed": seed, "steps": steps, "eval_every": eval_every,
                "eval_episodes": eval_episodes},
        "algo_config": {k: cfg[k] for k in ("lr", "batch_size", "buffer_size", "gamma", "tau",
                                            "hidden", "learning_starts")},
        "peer": {"library": lib, "version": version, "algo": algo, "train_freq": 1,
                 "gradient_steps": 1, "settings_from": f"contrl {algo} preset for {env_id}"},
    })
    t0 = time.perf_counter() - elapsed

    def write_rows():
        buf = io.StringIO()
        w = csv.DictWriter(buf, ["step", "time", "eval_return", "eval_std"])
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(run_dir / "progress.csv", buf.getvalue())

    class Evaluator(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                mean, std = evaluate(self.model, eval_env, eval_episodes, 10_000 + seed * 1000)
                rows.append({"step": self.num_timesteps,
                             "time": round(time.perf_counter() - t0, 2),
                             "eval_return": round(mean, 3), "eval_std": round(std, 3)})
                write_rows()
                if self.num_timesteps % checkpoint_every == 0 and self.num_timesteps < steps:
                    save_checkpoint(self.model, run_dir, self.num_timesteps,
                                    time.perf_counter() - t0)
                print(f"{lib}-{algo} {env_id} s{seed} step {self.num_timesteps}: "
                      f"{mean:.1f} +/- {std:.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
            return True

    # with reset_num_timesteps=False SB3 counts total_timesteps on from the model's own count
    model.learn(total_timesteps=steps - start, callback=Evaluator(),
                reset_num_timesteps=not resumed)
    shutil.rmtree(run_dir / "checkpoint", ignore_errors=True)


def main():
    from contrl.resolve import parse_seeds

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", choices=("sbx", "sb3"), default="sbx")
    p.add_argument("--algos", type=comma_list, default="sac")
    p.add_argument("--envs", type=comma_list, default="HalfCheetah-v5")
    p.add_argument("--seeds", default="0")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--eval-every", type=int, default=None, help="default: contrl's")
    p.add_argument("--eval-episodes", type=int, default=None, help="default: contrl's")
    p.add_argument("--checkpoint-every", type=int, default=50_000,
                   help="env steps between checkpoints (a multiple of the evaluation interval)")
    p.add_argument("--dir", required=True, help="folder of the run directories")
    a = p.parse_args()
    for algo in a.algos:
        if algo not in ("sac", "td3"):
            p.error(f"--algos: {algo} is not one of sac, td3")
    for algo in a.algos:
        for env_id in a.envs:
            for seed in parse_seeds(a.seeds):
                run_dir = Path(a.dir) / f"{a.lib}-{algo}-{env_id}-s{seed}"
                if finished(run_dir, a.steps):
                    print(f"{run_dir.name}: finished, skipped")
                    continue
                train_one(a.lib, algo, env_id, seed, a.steps, run_dir, a.eval_every,
                          a.eval_episodes, a.checkpoint_every)


if __name__ == "__main__":
    main()
