"""Learning runs of a peer library (sbx or Stable-Baselines3) written as contrl run directories,
so that `contrl report` puts them beside contrl's own runs (issue 18's parity at equal steps).

The peer gets contrl's resolved settings for the same (algorithm, env) -- defaults and preset:
network widths, learning rate, batch, buffer, discount, tau, random warm-up steps, and TD3's
noises and policy delay -- with one gradient step per env step (the peers' standard loop).
Evaluation matches contrl's: ``eval_episodes`` deterministic episodes every ``eval_every`` env
steps on a separate env instance seeded apart from the training env. Each run directory holds
``config.json`` (algo ``<lib>-<algo>``, the settings used) and ``progress.csv`` (step, time,
eval_return, eval_std); a run whose last evaluation is at ``--steps`` is skipped when the
command is run again, an unfinished one starts over (peers have no exact resume here).

    taskset -c 1 python benchmarks/peer_runs.py --lib sbx --algos sac --envs HalfCheetah-v5 \\
        --seeds 0-4 --steps 100000 --dir DIR
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.metadata
import io
import time
from pathlib import Path

import numpy as np

from common import atomic_write_json, atomic_write_text, comma_list


def contrl_settings(algo: str, env_id: str) -> tuple[dict, dict]:
    """contrl's resolved run and algorithm settings for (algo, env): defaults, then preset."""
    from contrl.resolve import build_configs

    run_cfg, algo_cfg = build_configs(algo, env_id, {})
    return dataclasses.asdict(run_cfg), dataclasses.asdict(algo_cfg)


def make_model(lib: str, algo: str, env, cfg: dict, seed: int):
    """The peer's model with contrl's settings."""
    if lib == "sb3":
        import stable_baselines3 as peer
        extra = {"device": "cpu"}
    else:
        import sbx as peer
        extra = {}
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
    path = run_dir / "progress.csv"
    if not path.is_file():
        return False
    rows = list(csv.DictReader(path.open(newline="")))
    return bool(rows) and int(rows[-1]["step"]) >= steps


def train_one(lib: str, algo: str, env_id: str, seed: int, steps: int, run_dir: Path,
              eval_every: int | None, eval_episodes: int | None) -> None:
    import gymnasium as gym
    from stable_baselines3.common.callbacks import BaseCallback

    run, cfg = contrl_settings(algo, env_id)
    eval_every = eval_every or run["eval_every"]
    eval_episodes = eval_episodes or run["eval_episodes"]
    env, eval_env = gym.make(env_id), gym.make(env_id)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    model = make_model(lib, algo, env, cfg, seed)
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
    rows: list[dict] = []
    t0 = time.perf_counter()

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
                print(f"{lib}-{algo} {env_id} s{seed} step {self.num_timesteps}: "
                      f"{mean:.1f} +/- {std:.1f} ({time.perf_counter() - t0:.0f} s)", flush=True)
            return True

    model.learn(total_timesteps=steps, callback=Evaluator())


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
                          a.eval_episodes)


if __name__ == "__main__":
    main()
