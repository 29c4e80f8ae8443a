"""Peak memory of a full 1M-transition replay buffer (default Humanoid-v5: 348-dim
observations, 17-dim actions), filled through ``ReplayBuffer.add`` with 1000-step episodes,
plus an agent and a few K-step updates sampled from it (recurrent agents: window batches).

    python benchmarks/memory.py [--transitions 1000000] [--out benchmarks/results/memory.md]
    python benchmarks/memory.py --env HalfCheetah-P-v5 --algo rsac --prev-action
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from common import emit, report_header


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB -> GiB


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--transitions", type=int, default=1_000_000)
    p.add_argument("--out", default=None)
    p.add_argument("--env", default="Humanoid-v5")
    p.add_argument("--algo", default="sac")
    p.add_argument("--limit-gb", type=float, default=3.0, help="the limit the issue asks for")
    p.add_argument("--prev-action", action="store_true", help="observations carry the previous action")
    a = p.parse_args()

    import jax
    from contrl.data import ReplayBuffer
    from contrl.envs import make_env
    from contrl.train import build_configs
    from contrl.registry import resolve_algo

    env = make_env(a.env, prev_action=a.prev_action)
    obs_dim, act_dim, n = env.observation_space.shape[0], env.action_space.shape[0], a.transitions
    base = rss_gb()
    buf = ReplayBuffer(n, obs_dim, act_dim)
    rng = np.random.default_rng(0)
    obs_block = rng.standard_normal((1000, 1, obs_dim), dtype=np.float32)
    act = np.zeros((1, act_dim), np.float32)
    zero, false = np.zeros(1, np.float32), np.zeros(1, bool)
    t0 = time.perf_counter()
    for t in range(n):
        i = t % 1000
        end = np.array([i == 999])
        buf.add(obs_block[i], act, zero, false, end, obs_block[(i + 1) % 1000])
    fill_s = time.perf_counter() - t0
    cfg = build_configs(a.algo, a.env, {}, use_preset=False)[1]
    agent = resolve_algo(a.algo)[1].create(cfg, obs_dim, act_dim, 0)
    for _ in range(3):
        agent, _ = agent.update(cfg.replay_batches(buf, cfg.batch_size, 8, 1000))
    jax.block_until_ready(agent)
    peak = rss_gb()
    nbytes = sum(getattr(buf, k).nbytes for k in ("obs", "action", "reward", "terminated", "valid"))
    lines = report_header(f"Memory, {n:,}-transition {a.env} buffer ({a.algo})", "memory.py",
                          level=3) + [
        f"- transitions: {n:,} (obs {obs_dim}, action {act_dim}); buffer arrays "
        f"{nbytes / 1e9:.2f} GB",
        f"- peak RSS of the whole process (Python + JAX + buffer + {a.algo} agent + updates): "
        f"{peak:.2f} GiB (before the buffer: {base:.2f} GiB); limit asked for: {a.limit_gb:g} GB",
        f"- filling through add(): {fill_s:.1f} s ({n / fill_s:,.0f} transitions/s)"]
    emit(lines, a.out)


if __name__ == "__main__":
    main()
