"""Build D4RL-style datasets for offline RL with contrl itself; resumable, stage by stage.

For each env (default: Hopper-v5 and HalfCheetah-v5; Walker2d-v5, dmc:walker-walk and
dmc:walker-run with --envs; dm_control ids name their datasets walker-walk-*, walker-run-*):

  expert run      SAC until --expert-steps (benchmarks/runs/grid/sac-<env>-s0, shared with
                  benchmarks/learning.py)
  <e>-expert-v0   1M steps of the expert run's best policy
  medium run      SAC from scratch with seed 1 (the expert's is 0: the same seed would
                  replay the expert's curve), stopped by ``--stop-at-return`` at a third of
                  the expert's return (benchmarks/runs/datasets/sac-<env>-medium)
  <e>-medium-v0   1M steps of the medium policy
  <e>-medium-replay-v0   the medium run's replay buffer, as it was when the run stopped
  <e>-random-v0   1M steps of a uniform random policy
  <e>-medium-expert-v0   medium followed by expert (2M steps)

The expert and medium datasets hold the policy's deterministic actions (its mode); with
``--sample`` their actions are drawn from the SAC policy's tanh-Gaussian instead, which is how
D4RL made its MuJoCo datasets (its collection script samples the policy's distribution and
stores each action's log-probability): ``--sample --version 1`` writes <e>-*-v1 from the same
expert and medium runs. Every dataset takes its reference scores (min: random policy, max:
the expert's deterministic evaluation) from the expert dataset. A stage whose output exists is
skipped, and an interrupted training run is resumed, so running the script again continues
where it stopped. With ``--policies DIR`` the expert and medium runs are kept in DIR without
their replay buffers (benchmarks/results/offline/policies: the checkpoint collected from,
3 MB for Hopper, committed), and a new machine collects from them instead of training: the
same policies, the same seeded collection, so the same datasets (medium-replay, the medium
run's buffer, is made only where that run was trained).

    python benchmarks/make_datasets.py [--envs Hopper-v5 HalfCheetah-v5] [--steps 1000000]
        [--sample --version 1] [--stages expert medium ...]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from common import ROOT, env_folder, log, run_dir_for, train_or_resume

CONTRL = Path(sys.executable).with_name("contrl")  # the command line of this environment's contrl
SHORT = {"Hopper-v5": "hopper", "HalfCheetah-v5": "halfcheetah", "Walker2d-v5": "walker2d"}


def short_name(env: str) -> str:
    """The datasets' prefix: hopper, halfcheetah, walker2d; walker-walk for dmc:walker-walk."""
    if env.startswith("dmc:"):
        return env[len("dmc:"):]
    return SHORT.get(env, env.split("-")[0].lower())


def contrl_collect(*args) -> dict:
    """Run ``contrl collect ARGS`` (its output passed through) and return the summary it prints
    last (name, episodes, steps, average_return, ...)."""
    cmd = [str(CONTRL), "collect", *map(str, args)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        lines = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            lines.append(line)
    if proc.returncode or not lines:
        raise SystemExit(f"{' '.join(cmd)} failed (exit status {proc.returncode})")
    return json.loads(lines[-1])


def exists(name: str) -> bool:
    from contrl.data.datasets import minari_root
    return (minari_root() / name).exists()


def kept_copy(policies: Path | None, run: Path, checkpoint: str) -> Path | None:
    """``run``'s exported copy in ``policies`` holding its ``checkpoint``, if there is one
    (logged: the run is then not trained)."""
    if policies is None:
        return None
    kept = policies / run.name
    if not (kept / "checkpoints" / f"{checkpoint}.ckpt").exists():
        return None
    log(f"kept     {kept} (not trained)")
    return kept


def trained(policies: Path | None, run: Path, checkpoint: str, train) -> Path:
    """``run`` after ``train(run)``, with its ``checkpoint`` (the one collected from) exported
    to ``policies`` when that is given."""
    train(run)
    if policies is not None:
        from contrl.rundir import export_policies
        export_policies(run, policies / run.name, which=(checkpoint,))
        log(f"exported {run.name} -> {policies / run.name}")
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["Hopper-v5", "HalfCheetah-v5"])
    p.add_argument("--steps", type=int, default=1_000_000, help="transitions per collected dataset")
    p.add_argument("--expert-steps", type=int, default=300_000)
    p.add_argument("--medium-fraction", type=float, default=1 / 3,
                   help="the medium run stops at this fraction of the expert's return")
    p.add_argument("--sample", action="store_true",
                   help="expert and medium datasets: actions sampled from the policy (D4RL's way)")
    p.add_argument("--version", type=int, default=0, help="the datasets' version suffix (-vN)")
    p.add_argument("--policies", type=Path, default=None,
                   help="a folder of the expert and medium runs' policies (exported without their "
                        "buffers, 3 MB each): a run found there is used instead of training "
                        "it, so a new machine remakes the same datasets; a run trained here is "
                        "exported there (medium-replay needs the trained run's own buffer)")
    p.add_argument("--stages", nargs="+",
                   default=["expert", "medium-run", "medium", "medium-replay", "random",
                            "medium-expert"])
    a = p.parse_args()
    from contrl.data.datasets import load_dataset

    sampled = ("--sample",) if a.sample else ()
    for env in a.envs:
        short = short_name(env)
        expert_run = run_dir_for(ROOT / "runs" / "grid", "sac", env, 0)
        medium_run = ROOT / "runs" / "datasets" / f"sac-{env_folder(env)}-medium"
        names = {s: f"{short}-{s}-v{a.version}"
                 for s in ("expert", "medium", "medium-replay", "random", "medium-expert")}
        if "expert" in a.stages:
            expert_run = kept_copy(a.policies, expert_run, "best") or trained(
                a.policies, expert_run, "best",
                lambda run: train_or_resume("sac", env, {"eval_every": 10_000}, run,
                                            a.expert_steps))
            if not exists(names["expert"]):
                log(f"collect  {names['expert']}")
                contrl_collect(expert_run, "--name", names["expert"], "--steps", a.steps,
                               "--checkpoint", "best", *sampled)
        expert = load_dataset(names["expert"], env)
        target = expert.ref_min_score + a.medium_fraction * (expert.ref_max_score - expert.ref_min_score)
        kept_medium = kept_copy(a.policies, medium_run, "latest")
        if kept_medium is not None:  # used even without the medium-run stage
            medium_run = kept_medium
        elif "medium-run" in a.stages:
            medium_run = trained(
                a.policies, medium_run, "latest",
                lambda run: train_or_resume("sac", env, {"eval_every": 5_000, "seed": 1,
                                                         "stop_at_return": target},
                                            run, a.expert_steps))
        ref = ("--ref-from", names["expert"])
        for stage, make in (
            ("medium", lambda n: contrl_collect(medium_run, "--name", n, "--steps", a.steps,
                                                "--checkpoint", "latest", *ref, *sampled)),
            ("medium-replay", lambda n: contrl_collect(medium_run, "--name", n, "--from-buffer",
                                                       "--checkpoint", "latest", *ref)),
            ("random", lambda n: contrl_collect("--name", n, "--steps", a.steps, "--random",
                                                "--env", env, *ref)),
            ("medium-expert", lambda n: contrl_collect("--name", n, "--concat", names["medium"],
                                                       names["expert"])),
        ):
            if stage in a.stages and not exists(names[stage]):
                if stage == "medium-replay" and kept_medium is not None:
                    log(f"skip     {names[stage]}: the kept medium run has no replay buffer "
                        f"(it is made where the medium run is trained)")
                    continue
                log(f"make     {names[stage]}")
                out = make(names[stage])
                log(f"made     {names[stage]}: {out['episodes']} episodes, {out['steps']} steps, "
                    f"average return {out['average_return']}")


if __name__ == "__main__":
    main()
