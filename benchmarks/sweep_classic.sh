#!/usr/bin/env bash
# The multi-seed report of benchmarks/results/sweep_classic/: SAC, TD3 and DDPG, 5 seeds each,
# by `contrl sweep` (resumable: rerun to continue) and `contrl report`. Steps come from the
# presets (Pendulum-v1 20k, InvertedDoublePendulum-v5 30k; Hopper-v5 300k: run it with
# --steps and as many sessions as it takes). The small per-run files are copied into the
# results directory so the report can be rebuilt from git alone.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=benchmarks/runs/sweep-classic
out=benchmarks/results/sweep_classic
for env in ${ENVS:-Pendulum-v1 InvertedDoublePendulum-v5}; do
  .venv/bin/contrl sweep sac,td3,ddpg "$env" --seeds 0-4 --dir "$runs/$env" --no-progress
done
for d in "$runs"/*/*-s[0-9]*; do
  dst="$out/runs/$(basename "$(dirname "$d")")/$(basename "$d")"
  mkdir -p "$dst"
  cp "$d/config.json" "$d/progress.csv" "$d/eval.json" "$dst/"
done
.venv/bin/contrl report "$out/runs" --out "$out"
