"""Peak memory of a full 1M-transition replay buffer for Humanoid-v5 (348-dim observations,
17-dim actions), filled through ``ReplayBuffer.add`` with 1000-step episodes, plus a SAC agent
for Humanoid and a few K-step updates sampled from it.

    python benchmarks/memory.py [--transitions 1000000] [--out benchmarks/results/memory.md]
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
    a = p.parse_args()

    import jax
    from contrl.agents.sac import SAC, SACConfig
    from contrl.data import ReplayBuffer

    obs_dim, act_dim, n = 348, 17, a.transitions
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
    agent = SAC.create(SACConfig(), obs_dim, act_dim, 0)
    for _ in range(3):
        agent, _ = agent.update(buf.sample(256, 0.99, 8))
    jax.block_until_ready(agent)
    peak = rss_gb()
    nbytes = sum(getattr(buf, k).nbytes for k in ("obs", "action", "reward", "terminated", "valid"))
    lines = report_header("Memory, 1M-transition Humanoid-v5 buffer", "memory.py", level=3) + [
        f"- transitions: {n:,} (obs {obs_dim}, action {act_dim}); buffer arrays "
        f"{nbytes / 1e9:.2f} GB",
        f"- peak RSS of the whole process (Python + JAX + buffer + SAC agent + updates): "
        f"{peak:.2f} GiB (before the buffer: {base:.2f} GiB); limit asked for: 3 GB",
        f"- filling through add(): {fill_s:.1f} s ({n / fill_s:,.0f} transitions/s)"]
    emit(lines, a.out)


if __name__ == "__main__":
    main()
