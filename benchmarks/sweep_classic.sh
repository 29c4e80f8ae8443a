#!/usr/bin/env bash
# The multi-seed report of benchmarks/results/sweep_classic/: SAC, TD3 and DDPG, 5 seeds each,
# by `contrl sweep` (resumable: rerun to continue) and `contrl report`. ENVS lists ENV or
# ENV:STEPS; without STEPS the preset's (Pendulum-v1 20k, InvertedDoublePendulum-v5 30k).
# Hopper-v5 ran at 100k (15 runs of 4-9 minutes on one core: what one session here allows):
#   ENVS="Hopper-v5:100000" JOBS=1 bash benchmarks/sweep_classic.sh
# The small per-run files are copied into the results directory so the report can be rebuilt
# from git alone.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=benchmarks/runs/sweep-classic
out=benchmarks/results/sweep_classic
for item in ${ENVS:-Pendulum-v1 InvertedDoublePendulum-v5}; do
  env=${item%%:*}
  steps=()
  [[ "$item" == *:* ]] && steps=(--steps "${item#*:}")
  jobs=()
  [[ -n "${JOBS:-}" ]] && jobs=(--jobs "$JOBS")
  .venv/bin/contrl sweep sac,td3,ddpg "$env" --seeds 0-4 "${steps[@]}" "${jobs[@]}" \
    --dir "$runs/$env" --no-progress
done
for d in "$runs"/*/*-s[0-9]*; do
  dst="$out/runs/$(basename "$(dirname "$d")")/$(basename "$d")"
  mkdir -p "$dst"
  cp "$d/config.json" "$d/progress.csv" "$d/eval.json" "$dst/"
done
.venv/bin/contrl report "$out/runs" --out "$out"
