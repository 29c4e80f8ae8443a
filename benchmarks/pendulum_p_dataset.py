"""A Pendulum-P-v1 (angle only) dataset for the recurrent agents' dataset windows: SAC trained
on the fully observed Pendulum-v1 (resumable), its noisy rollouts collected as a Minari
dataset, and their Pendulum-P view (observation indices 0, 1: the cos and sin of the angle,
what Pendulum-P-v1 keeps) written as a second dataset for Pendulum-P-v1.

    python benchmarks/pendulum_p_dataset.py --runs-dir benchmarks/runs/memory
    python benchmarks/memory_pomdp.py --settings rsac,rsac_data --envs Pendulum-P-v1 \\
        --dataset benchmarks/runs/memory/minari/pendulum-p-noisy-v0 --steps 6000
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from common import log, train_or_resume


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", type=Path, default=Path("benchmarks/runs/memory"))
    p.add_argument("--expert-steps", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=20_000, help="transitions collected")
    p.add_argument("--noise", type=float, default=0.3, help="std of the expert's action noise")
    a = p.parse_args()
    os.environ["MINARI_DATASETS_PATH"] = str((a.runs_dir / "minari").resolve())
    from contrl.data.datasets import load_dataset, minari_root, write_minari
    from contrl.envs.pomdp import VARIANTS
    from contrl.rundir import collect_run

    expert = a.runs_dir / "sac-Pendulum-v1-expert-s0"
    ev = train_or_resume("sac", "Pendulum-v1", {"seed": 0, "eval_every": a.expert_steps},
                         expert, a.expert_steps)
    full, view = "pendulum-noisy-v0", "pendulum-p-noisy-v0"
    if not (minari_root() / full).exists():
        collect_run(expert, full, a.steps, noise=a.noise)
    if not (minari_root() / view).exists():
        keep = list(VARIANTS["Pendulum-P-v1"].keep)
        data = load_dataset(full)
        episodes = [dict(ep, observations=ep["observations"][:, keep]) for ep in data.episodes()]
        write_minari(view, episodes, "Pendulum-P-v1",
                     {"policy": f"{data.metadata.get('policy')} on Pendulum-v1, angle only",
                      "source": full}, data.ref_min_score, data.ref_max_score)
    out = load_dataset(view)
    log(f"{view}: {len(out)} transitions, {int(out.episode_ends.sum())} episodes, average "
        f"return {out.episode_returns.mean():.1f} (expert's evaluation: {ev.get('mean_return')})")


if __name__ == "__main__":
    main()
