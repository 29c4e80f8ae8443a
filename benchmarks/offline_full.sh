#!/usr/bin/env bash
# Issue 17's compute, in two lanes of one core each; every step is resumable (a finished stage,
# dataset or run is skipped, an interrupted run resumes from its last checkpoint), so the same
# command continues across sessions:
#   taskset -c 0 bash benchmarks/offline_full.sh a > lane_a.log 2>&1 &
#   taskset -c 1 bash benchmarks/offline_full.sh b > lane_b.log 2>&1 &
# Lane a: the Gymnasium datasets (SAC experts 300k) and the full-length offline table on them;
#         hopper from -v1 on: actions sampled from the SAC policies, as D4RL made its datasets
#         (on -v0, deterministic actions, IQL could not rise above BC: results/offline/README.md).
# Lane b: the dm_control walker datasets (walker-run's expert to 1M: at 300k it was still
#         rising), Walker2d-v5 from a 1M expert, and the walker study's table; all -v1
#         (sampled actions).
# The policies behind the datasets are kept in results/offline/policies (make_datasets.py
# --policies): a new machine remakes the same datasets without training the experts.
# Reports: `python benchmarks/offline.py --report ...` with the same datasets (see offline.py).
set -euo pipefail
cd "$(dirname "$0")"
py=../.venv/bin/python
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
table=(--algos bc iql td3bc --seeds 0 1 2 --steps 300000 --eval-every 10000)
kept=(--policies results/offline/policies)  # the experts and medium policies: collected from, not retrained
# TD3+BC's torch init draws PyTorch's biases since 7541dcb (session 25); its hopper -v1 rows
# trained before (hopper-medium-v1 seeds 0-2, hopper-medium-expert-v1 seeds 0-1) have zero
# biases: move those runs aside and rerun them for one init across the table.
case "${1:-}" in
  a)
    $py make_datasets.py "${kept[@]}" --envs HalfCheetah-v5 Hopper-v5 --stages expert medium-run medium
    # halfcheetah-medium-v0 and hopper-medium-v0's BC and IQL finished in sessions 21-23
    # (results/offline/full); what is left of them:
    $py offline.py --algos td3bc --seeds 1 2 --steps 300000 --eval-every 10000 --datasets hopper-medium-v0
    $py make_datasets.py "${kept[@]}" --envs Hopper-v5 --sample --version 1 --stages expert medium-run medium medium-expert
    $py offline.py "${table[@]}" --datasets hopper-medium-v1 hopper-medium-expert-v1
    $py offline.py --algos cql --seeds 0 1 --steps 100000 --eval-every 10000 \
      --datasets hopper-medium-v1 halfcheetah-medium-v0
    ;;
  b)
    $py make_datasets.py "${kept[@]}" --envs dmc:walker-walk --sample --version 1
    $py make_datasets.py "${kept[@]}" --envs dmc:walker-run Walker2d-v5 --expert-steps 1000000 --sample --version 1
    $py offline.py "${table[@]}" --datasets walker2d-medium-v1
    $py offline.py --algos bc td3bc iql cql --seeds 0 1 2 --steps 300000 --eval-every 10000 \
      --steps-for cql=100000 --datasets walker-walk-expert-v1 walker-walk-medium-v1 \
      walker-run-expert-v1 walker-run-medium-v1
    ;;
  *)
    echo "usage: offline_full.sh a|b" >&2
    exit 2
    ;;
esac
