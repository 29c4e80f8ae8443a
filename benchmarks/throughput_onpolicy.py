"""On-policy training throughput (PPO or A2C): contrl vs Stable-Baselines3, side by side.

Same settings for both (contrl's presets for the env): PPO 8 envs x 256 steps, 10 epochs of
minibatches of 64; A2C 16 envs x 5 steps, RMSprop; 64x64 tanh networks, observation and
reward normalization (SB3: VecNormalize), advantage normalization, initial log std -0.5.
Env steps/s are timed after ``--skip`` steps (compilation, first updates) over ``--measure``
steps, updates included. SB3 runs with its synchronous DummyVecEnv and, to see whether
stepping envs in subprocesses pays on this machine, with SubprocVecEnv (``sb3-subproc``).

    python benchmarks/throughput_onpolicy.py --algo ppo [--env HalfCheetah-v5] [--repeats 3] [--out FILE]
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time

import numpy as np

from common import comma_list, emit, report_header, run_interleaved
from throughput import ratio_table, timing_callback

SETTINGS = {
    "ppo": dict(num_envs=8, rollout_steps=256),
    "a2c": dict(num_envs=16, rollout_steps=5),
}


def run_contrl(algo: str, env: str, skip: int, measure: int) -> float:
    from contrl.train import train

    s = SETTINGS[algo]
    batch = s["num_envs"] * s["rollout_steps"]
    with tempfile.TemporaryDirectory() as tmp:
        train(algo, env, dict(steps=skip + measure, eval_every=0, eval_episodes=1,
                              log_every=batch, checkpoint_every=10 * (skip + measure),
                              tensorboard=False, progress=False, **s), run_dir=f"{tmp}/run")
        rows = list(csv.DictReader(open(f"{tmp}/run/progress.csv")))
    t = {int(r["step"]): float(r["time"]) for r in rows}
    return measure / (t[skip + measure] - t[skip])


def run_sb3(algo: str, env: str, skip: int, measure: int, subproc: bool, threads: int) -> float:
    import stable_baselines3 as sb3
    import torch
    torch.set_num_threads(threads)
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

    s = SETTINGS[algo]
    venv = make_vec_env(env, n_envs=s["num_envs"], seed=0,
                        vec_env_cls=SubprocVecEnv if subproc else None)
    venv = VecNormalize(venv, gamma=0.99)
    policy_kwargs = dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.Tanh,
                         log_std_init=-0.5, ortho_init=True)
    if algo == "ppo":
        model = sb3.PPO("MlpPolicy", venv, n_steps=s["rollout_steps"], batch_size=64, n_epochs=10,
                        learning_rate=3e-4, gamma=0.99, gae_lambda=0.95, clip_range=0.2,
                        ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
                        policy_kwargs=policy_kwargs, seed=0, device="cpu", verbose=0)
    else:
        model = sb3.A2C("MlpPolicy", venv, n_steps=s["rollout_steps"], learning_rate=7e-4,
                        gamma=0.99, gae_lambda=0.95, ent_coef=0.01, vf_coef=0.5,
                        max_grad_norm=0.5, normalize_advantage=True, use_rms_prop=True,
                        policy_kwargs=policy_kwargs, seed=0, device="cpu", verbose=0)
    cb = timing_callback(skip)
    model.learn(total_timesteps=skip + measure, callback=cb())
    elapsed = time.perf_counter() - cb.t_start
    venv.close()
    return measure / elapsed


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", choices=tuple(SETTINGS), default="ppo")
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--skip", type=int, default=None, help="steps before timing (default: 2 updates)")
    p.add_argument("--measure", type=int, default=None, help="timed steps (default: 10 PPO / 200 A2C updates)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--libs", type=comma_list, default="contrl,sb3,sb3-subproc")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch threads for SB3 (1 is fastest for 64x64 networks here)")
    p.add_argument("--out", default=None, help="append a Markdown record here")
    a = p.parse_args()
    s = SETTINGS[a.algo]
    batch = s["num_envs"] * s["rollout_steps"]
    skip = a.skip or 2 * batch
    measure = a.measure or (10 if a.algo == "ppo" else 200) * batch
    if skip % batch or measure % batch:
        p.error(f"skip and measure must be multiples of the rollout batch ({batch})")
    def run_one(lib: str) -> float:
        if lib == "contrl":
            return run_contrl(a.algo, a.env, skip, measure)
        return run_sb3(a.algo, a.env, skip, measure, lib == "sb3-subproc", a.torch_threads)

    results = run_interleaved(a.libs, a.repeats, run_one)
    settings = (f"settings: {s['num_envs']} envs x {s['rollout_steps']} steps per update, "
                f"64x64 tanh, obs + reward normalization; timed over env steps "
                f"{skip}-{skip + measure}, updates included; SB3 with {a.torch_threads} torch "
                f"thread(s)")
    lines = report_header(f"{a.algo.upper()} throughput, {a.env}", "throughput_onpolicy.py",
                          level=3, minutes=True, settings=settings)
    emit(lines + ratio_table(results, "env steps/s"), a.out)
    print(json.dumps({"median_steps_per_sec": {k: float(np.median(v)) for k, v in results.items()}}))


if __name__ == "__main__":
    main()
