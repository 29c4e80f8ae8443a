"""Training throughput on HalfCheetah-v5 (SAC, TD3 or DDPG): contrl vs Stable-Baselines3 vs sbx,
side by side.

Same settings for all: 2x256 MLPs, batch 256, lr 3e-4, 1M buffer, one gradient step per env
step on average, ``--warmup`` random steps first. Each library trains for warmup + skip + measure
steps; steps/s is taken over the last ``measure`` steps only (after compilation and warm-up).
Peers are optional (``pip install -e .[bench]``); a missing one is reported and skipped.

    python benchmarks/throughput.py [--algo sac|td3|ddpg] [--measure 3000] [--repeats 2] [--out FILE]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time

import numpy as np

from common import comma_list, emit, report_header, run_interleaved

ENV = "HalfCheetah-v5"


# sbx's TD3 departs from the paper: its actor reads min(Q1, Q2) and it moves the targets after
# every critic step; contrl's TD3 does the same arithmetic with these settings (lib contrl-sbx)
LIKE_SBX_TD3 = {"actor_q": "min", "target_update": "every_step"}


def run_contrl(algo: str, warmup: int, skip: int, measure: int, update_every: int,
               overrides: dict | None = None) -> float:
    from contrl.loops.offpolicy import train_offpolicy
    from contrl.run import new_run_dir
    from contrl.registry import resolve_algo
    from contrl.train import build_configs

    total = warmup + skip + measure
    with tempfile.TemporaryDirectory() as tmp:
        run_cfg, cfg = build_configs(algo, ENV, dict(
            steps=total, learning_starts=warmup, update_every=update_every, eval_every=0,
            eval_episodes=1, log_every=500, checkpoint_every=10 * total, runs_dir=tmp,
            tensorboard=False, progress=False, **(overrides or {})))
        run_dir = new_run_dir(tmp, algo, ENV, 0)
        train_offpolicy(run_cfg, cfg, resolve_algo(algo)[1], run_dir)
        rows = list(csv.DictReader(open(run_dir / "progress.csv")))
    t = {int(r["step"]): float(r["time"]) for r in rows}
    start, end = warmup + skip, total
    return measure / (t[end] - t[start])


def timing_callback(start_step: int):
    """An SB3 callback class (sbx uses the same interface) that records the wall time at
    ``start_step`` in its ``t_start`` attribute."""
    from stable_baselines3.common.callbacks import BaseCallback

    class StartTimer(BaseCallback):
        t_start = None

        def _on_step(self):
            if self.num_timesteps == start_step:
                StartTimer.t_start = time.perf_counter()
            return True
    return StartTimer


def run_peer(lib: str, algo: str, warmup: int, skip: int, measure: int) -> float:
    import gymnasium as gym
    if lib == "sb3":
        import stable_baselines3 as peer
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        extra = {"device": "cpu"}
    else:
        import sbx as peer
        extra = {}
    env = gym.make(ENV)
    if algo in ("td3", "ddpg"):  # same settings as contrl's defaults
        from stable_baselines3.common.noise import NormalActionNoise
        n = env.action_space.shape[0]
        extra["action_noise"] = NormalActionNoise(np.zeros(n), 0.1 * np.ones(n))
    model = getattr(peer, algo.upper())(
        "MlpPolicy", env, learning_rate=3e-4, buffer_size=1_000_000, learning_starts=warmup,
        batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1,
        policy_kwargs={"net_arch": [256, 256]}, seed=0, verbose=0, **extra)
    cb = timing_callback(warmup + skip)
    model.learn(total_timesteps=warmup + skip + measure, callback=cb())
    return measure / (time.perf_counter() - cb.t_start)


def bare_update_rate(algo: str, update_every: int, seconds: float = 10.0) -> float:
    import jax
    from contrl.data import Batch
    from contrl.registry import resolve_algo

    cfg_cls, agent_cls, _ = resolve_algo(algo)
    agent = agent_cls.create(cfg_cls(), 17, 6, 0)
    r = np.random.default_rng(0)
    k, b = update_every, 256
    batch = Batch(r.standard_normal((k, b, 17), dtype=np.float32),
                  r.uniform(-1, 1, (k, b, 6)).astype(np.float32),
                  r.standard_normal((k, b), dtype=np.float32), np.full((k, b), 0.99, np.float32),
                  r.standard_normal((k, b, 17), dtype=np.float32))
    agent, _ = agent.update(batch)
    jax.block_until_ready(agent)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        agent, _ = agent.update(batch)
        n += k
    jax.block_until_ready(agent)
    return n / (time.perf_counter() - t0)


def sampling_cost(update_every: int, n: int = 200) -> float:
    """Microseconds to draw update_every batches of 256 from a full 1M HalfCheetah buffer."""
    from contrl.data import ReplayBuffer

    buf = ReplayBuffer(1_000_000, 17, 6)
    buf.obs[:] = 1.0
    buf.valid[:, :-1] = True
    buf.filled[:] = buf.rows
    buf.sample(256, 0.99, update_every)
    t0 = time.perf_counter()
    for _ in range(n):
        buf.sample(256, 0.99, update_every)
    return (time.perf_counter() - t0) / n * 1e6


# ------------------------------------------------ shared with throughput_onpolicy.py
def ratio_table(results: dict[str, list[float]], unit: str) -> list[str]:
    """Median per library and contrl's ratio to each."""
    med = {lib: float(np.median(v)) for lib, v in results.items()}
    lines = [f"| library | {unit} (median) | runs | contrl ratio |", "|---|---|---|---|"]
    for lib, v in med.items():
        ratio = med.get("contrl", float("nan")) / v
        lines.append(f"| {lib} | {v:.1f} | {', '.join(f'{x:.1f}' for x in results[lib])} "
                     f"| {ratio:.2f}x |")
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=("sac", "td3", "ddpg"), default="sac")
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--skip", type=int, default=1000, help="learning steps before timing starts")
    p.add_argument("--measure", type=int, default=3000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--update-every", type=int, default=None, help="contrl update_every (default: SACConfig's)")
    p.add_argument("--libs", type=comma_list, default="contrl,sbx,sb3",
                   help="comma list of contrl, contrl-ueN (update_every=N), contrl-sbx (TD3 "
                   "doing sbx's arithmetic: actor on min(Q1, Q2), targets every critic step; "
                   "compare it with sbx), sbx, sb3")
    p.add_argument("--out", default=None, help="append a Markdown record here")
    a = p.parse_args()
    if (a.warmup + a.skip) % 500 or a.measure % 500:
        p.error("warmup + skip and measure must be multiples of 500 (contrl logs every 500 steps)")
    if "contrl-sbx" in a.libs and a.algo != "td3":
        p.error("contrl-sbx is TD3's sbx-like setting (use contrl for sac and ddpg)")
    from contrl.registry import resolve_algo
    ue = a.update_every or resolve_algo(a.algo)[0]().update_every
    bares: list[float] = []

    def run_one(lib: str) -> float:
        if lib == "contrl":
            return run_contrl(a.algo, a.warmup, a.skip, a.measure, ue)
        if lib == "contrl-sbx":
            return run_contrl(a.algo, a.warmup, a.skip, a.measure, ue, LIKE_SBX_TD3)
        if lib.startswith("contrl-ue"):  # e.g. contrl-ue1: update after every env step
            return run_contrl(a.algo, a.warmup, a.skip, a.measure, int(lib[len("contrl-ue"):]))
        return run_peer(lib, a.algo, a.warmup, a.skip, a.measure)

    def after_repetition(rep: int) -> None:  # bare update in every repetition: noise
        bares.append(bare_update_rate(a.algo, ue, seconds=5.0))
        print(f"rep {rep} bare update {bares[-1]:7.1f} updates/s", flush=True)

    results = run_interleaved(a.libs, a.repeats, run_one, after_repetition)
    bare = float(np.median(bares))
    sample_us = sampling_cost(ue)
    med = {lib: float(np.median(v)) for lib, v in results.items()}
    settings = (f"settings: 2x256, batch 256, lr 3e-4, 1 update/env step (TD3/DDPG: policy "
                f"delay 2/1, exploration noise 0.1), {a.warmup} random steps, timed over steps "
                f"{a.warmup + a.skip}-{a.warmup + a.skip + a.measure}; contrl update_every={ue}")
    lines = report_header(f"{a.algo.upper()} throughput, {ENV}", "throughput.py", level=3,
                          minutes=True, settings=settings)
    lines += ratio_table(results, "steps/s")
    if "contrl" in med:
        lines += ["", f"bare jitted contrl update (median of one measurement per repetition: "
                  f"{', '.join(f'{b:.1f}' for b in bares)}): {bare:.1f} updates/s; whole loop reaches "
                  f"{100 * med['contrl'] / bare:.0f}% of it",
                  f"sampling {ue} batches of 256 from a full 1M-transition buffer: {sample_us:.0f} us "
                  f"({100 * sample_us / (ue * 1e6 / bare):.1f}% of the time of the {ue} updates it feeds)"]
    emit(lines, a.out)
    print(json.dumps({"median_steps_per_sec": med, "bare_updates_per_sec": bare,
                      "sample_us": sample_us}))


if __name__ == "__main__":
    main()
