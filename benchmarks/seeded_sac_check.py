"""Does an imitation-seeded SAC actor survive the first online updates? Hopper-v5, actor cloned
from hopper-expert-v0 (5000 BC steps), critics pre-fitted to returns-to-go, then online SAC with
evaluations every 1000 env steps (3 episodes). Prints one line per variant.

    python benchmarks/seeded_sac_check.py ["variant name" ...]
"""
from __future__ import annotations

import csv
import tempfile

from contrl.train import train

VARIANTS = {
    "random warm-up 1k": {"learning_starts": 1000, "steps": 6000},
    "random warm-up 1k + bc_weight 1": {"learning_starts": 1000, "steps": 6000, "bc_weight": 1.0},
    "seeded-policy warm-up 5k": {"learning_starts": 5000, "random_warmup": False},
    "seeded-policy warm-up 5k + bc_weight 1": {"learning_starts": 5000, "random_warmup": False,
                                               "bc_weight": 1.0},
    "seeded-policy warm-up 5k, alpha 0.01 fixed": {"learning_starts": 5000, "random_warmup": False,
                                                  "init_alpha": 0.01, "autotune_alpha": False},
    "seeded-policy warm-up 5k + offline_ratio 0.5": {"learning_starts": 5000,
                                                     "random_warmup": False, "offline_ratio": 0.5},
    "seeded-policy warm-up 5k + offline_ratio 0.5 + bc_weight 1": {
        "learning_starts": 5000, "random_warmup": False, "offline_ratio": 0.5, "bc_weight": 1.0},
    "seeded-policy warm-up 5k, log std reset to -1.6": {
        "learning_starts": 5000, "random_warmup": False, "seed_log_std": -1.6},
    "seeded-policy warm-up 5k + Q-normalized bc_weight 1": {
        "learning_starts": 5000, "random_warmup": False, "bc_weight": 1.0, "bc_normalize_q": True},
}


def main():
    import sys
    chosen = sys.argv[1:] or list(VARIANTS)  # variant names, or all
    for name, over in ((n, VARIANTS[n]) for n in chosen):
        with tempfile.TemporaryDirectory() as tmp:
            opts = dict(dataset="hopper-expert-v0", pretrain_steps=5000, steps=12000,
                        eval_every=1000, eval_episodes=3, runs_dir=tmp, progress=False,
                        tensorboard=False)
            out = train("sac", "Hopper-v5", {**opts, **over})
            rows = [r for r in csv.DictReader(open(out["run_dir"] + "/progress.csv"))
                    if r["eval_return"]]
            print(f"{name}: " + ", ".join(f"{int(r['step']) // 1000}k {float(r['eval_return']):.0f}"
                                          for r in rows), flush=True)


if __name__ == "__main__":
    main()
