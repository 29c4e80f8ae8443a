"""Build D4RL-style datasets for offline RL with contrl itself; resumable, stage by stage.

For each env (default: Hopper-v5 and HalfCheetah-v5; add Walker2d-v5 with --envs):

  expert run      SAC until --expert-steps (benchmarks/runs/grid/sac-<env>-s0, shared with
                  benchmarks/learning.py)
  <e>-expert-v0   1M steps of the expert run's best policy
  medium run      SAC from scratch, stopped by ``--stop-at-return`` at a third of the
                  expert's return (benchmarks/runs/datasets/sac-<env>-medium)
  <e>-medium-v0   1M steps of the medium policy
  <e>-medium-replay-v0   the medium run's replay buffer, as it was when the run stopped
  <e>-random-v0   1M steps of a uniform random policy
  <e>-medium-expert-v0   medium followed by expert (2M steps)

Every dataset takes its reference scores (min: random policy, max: expert policy) from the
expert dataset. A stage whose output exists is skipped, and an interrupted training run is
resumed, so running the script again continues where it stopped.

    python benchmarks/make_datasets.py [--envs Hopper-v5 HalfCheetah-v5] [--steps 1000000]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from learning import finished_step  # (this script's directory is on sys.path)

ROOT = Path(__file__).resolve().parent
SHORT = {"Hopper-v5": "hopper", "HalfCheetah-v5": "halfcheetah", "Walker2d-v5": "walker2d"}


def log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def train_until(run: Path, env: str, steps: int, stop_at: float | None = None,
                eval_every: int = 10_000) -> None:
    """Train SAC in ``run`` until ``steps`` (or an evaluation reaches ``stop_at``), resuming."""
    from contrl.train import train
    done = finished_step(run)
    if done >= 0:
        last = json.loads((run / "eval.json").read_text())["mean_return"]
        if done >= steps or (stop_at is not None and last >= stop_at):
            log(f"done     {run.name} (step {done}, eval {last:.0f})")
            return
        log(f"resume   {run.name} from step {done}")
        out = train("sac", env, {"steps": steps, "progress": False}, resume=str(run))
    else:
        log(f"start    {run.name}")
        over = {"steps": steps, "progress": False, "eval_every": eval_every,
                "stop_at_return": stop_at}
        out = train("sac", env, over, run_dir=str(run))
    log(f"finished {run.name}: step {out['step']} eval {out['eval']['mean_return']:.0f}")


def exists(name: str) -> bool:
    from contrl.data.datasets import minari_root
    return (minari_root() / name).exists()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["Hopper-v5", "HalfCheetah-v5"])
    p.add_argument("--steps", type=int, default=1_000_000, help="transitions per collected dataset")
    p.add_argument("--expert-steps", type=int, default=300_000)
    p.add_argument("--medium-fraction", type=float, default=1 / 3,
                   help="the medium run stops at this fraction of the expert's return")
    p.add_argument("--stages", nargs="+",
                   default=["expert", "medium-run", "medium", "medium-replay", "random",
                            "medium-expert"])
    a = p.parse_args()
    from contrl.data import collect as col
    from contrl.data.datasets import load_dataset

    for env in a.envs:
        short = SHORT.get(env, env.split("-")[0].lower())
        expert_run = ROOT / "runs" / "grid" / f"sac-{env}-s0"
        medium_run = ROOT / "runs" / "datasets" / f"sac-{env}-medium"
        names = {s: f"{short}-{s}-v0" for s in ("expert", "medium", "medium-replay", "random",
                                                "medium-expert")}
        if "expert" in a.stages:
            train_until(expert_run, env, a.expert_steps)
            if not exists(names["expert"]):
                log(f"collect  {names['expert']}")
                col.collect(str(expert_run), names["expert"], a.steps, which="best")
        expert = load_dataset(names["expert"], env)
        target = expert.ref_min_score + a.medium_fraction * (expert.ref_max_score - expert.ref_min_score)
        if "medium-run" in a.stages:
            train_until(medium_run, env, a.expert_steps, stop_at=target, eval_every=5_000)
        for stage, make in (
            ("medium", lambda n: col.collect(str(medium_run), n, a.steps, which="latest",
                                         ref_from=names["expert"])),
            ("medium-replay", lambda n: col.export_buffer(str(medium_run), n, ref_from=names["expert"])),
            ("random", lambda n: col.collect(None, n, a.steps, random=True, env_id=env,
                                         ref_from=names["expert"])),
            ("medium-expert", lambda n: col.concat([names["medium"], names["expert"]], n)),
        ):
            if stage in a.stages and not exists(names[stage]):
                log(f"make     {names[stage]}")
                out = make(names[stage])
                log(f"made     {names[stage]}: {out['episodes']} episodes, {out['steps']} steps, "
                    f"average return {out['average_return']}")


if __name__ == "__main__":
    main()
