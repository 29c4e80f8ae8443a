"""Imitation benchmark: BC against the expert on expert datasets, and DAgger against BC as a
function of the number of expert labels. Resumable: finished runs are skipped. Needs the expert
datasets made by ``contrl collect`` (see benchmarks/results/imitation/README.md for the
commands). Imitation-seeded SAC (the ``seeded_sac`` algorithm) is run with ``contrl train
seeded_sac``, also in that README.

    python benchmarks/imitation.py [--bc ENV=DATASET ...] [--labels ENV=DATASET=EXPERT_RUN ...]
        [--runs-dir benchmarks/runs/imitation] [--out benchmarks/results/imitation]

The defaults are the recorded benchmark: BC on Pendulum-v1 and HalfCheetah-v5, labels on
Hopper-v5. Issue 18's tasks: ``--bc Humanoid-v5=humanoid-expert-v0 --labels
Ant-v5=ant-expert-v0=RUN --out benchmarks/results/imitation/ant_humanoid``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import atomic_write_json, column, copy_file, pyplot, train_or_resume

BC_SIZES = (1000, 2000, 5000, 10000, 20000, 50000)


def run(algo: str, env: str, opts: dict, path: Path) -> dict:
    """The run's last evaluation, training it first (or resuming it) if it is not finished."""
    opts = {"tensorboard": False, **opts}
    return train_or_resume(algo, env, opts, path, opts.pop("steps"))


def pair(text: str, parts: int) -> list[str]:
    """``A=B`` (or ``A=B=C``) split into its parts, with a one-line error otherwise."""
    items = text.split("=")
    if len(items) != parts or not all(items):
        raise argparse.ArgumentTypeError(f"expected {'='.join(['X'] * parts)}, got '{text}'")
    return items


def bc_score(env: str, name: str, a, runs_dir: Path) -> dict:
    """BC on the whole expert dataset ``name``: its final evaluation against the expert's."""
    from contrl.data.datasets import load_dataset
    ds = load_dataset(name, env)
    ev = run("bc", env, dict(dataset=name, steps=a.bc_steps, eval_every=a.bc_steps // 4),
             runs_dir / f"bc-{env}")
    res = {"eval_return": ev["mean_return"], "eval_std": ev["std_return"],
           "normalized_score": ev.get("normalized_score"),
           "expert_return": ds.ref_max_score, "random_return": ds.ref_min_score,
           "dataset_average_return": ds.metadata.get("average_return")}
    print(env, res, flush=True)
    return res


def labels_curve(env: str, name: str, expert: str, a, runs_dir: Path, out: Path) -> dict:
    """BC on the first n expert transitions against DAgger with the same expert, by labels."""
    from contrl.data.datasets import load_dataset
    ds = load_dataset(name, env)
    bc = {}
    for n in (n for n in BC_SIZES if n <= len(ds)):
        ev = run("bc", env, dict(dataset=name, dataset_size=n, steps=a.bc_steps,
                                 eval_every=a.bc_steps), runs_dir / f"bc-{env}-n{n}")
        bc[n] = ev["mean_return"]
        print("bc", env, n, ev["mean_return"], flush=True)
    dagger_dir = runs_dir / f"dagger-{env}"
    run("dagger", env, dict(expert=expert, steps=a.dagger_labels, steps_per_round=1000,
                            updates_per_round=2000, eval_every=1000), dagger_dir)
    dagger = {int(s): float(r) for s, r in zip(*column(dagger_dir, "eval_return"))}
    for f in ("progress.csv", "config.json"):
        copy_file(dagger_dir / f, out / f"dagger-{env}-{f}")
    return {"expert_return": ds.ref_max_score, "bc": bc, "dagger": dagger}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", type=Path, default=Path("benchmarks/runs/imitation"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/imitation"))
    p.add_argument("--bc", nargs="*", type=lambda s: pair(s, 2), metavar="ENV=DATASET",
                   default=[["Pendulum-v1", "pendulum-expert-v0"],
                            ["HalfCheetah-v5", "halfcheetah-expert-v0"]],
                   help="BC on the whole expert dataset, scored against the expert")
    p.add_argument("--labels", nargs="*", type=lambda s: pair(s, 3),
                   metavar="ENV=DATASET=EXPERT_RUN",
                   default=[["Hopper-v5", "hopper-expert-v0", "benchmarks/runs/grid/sac-Hopper-v5-s0"]],
                   help="BC on the first n transitions against DAgger with the expert run")
    p.add_argument("--bc-steps", type=int, default=20000, help="gradient steps per BC run")
    p.add_argument("--dagger-labels", type=int, default=20000)
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    # results of earlier invocations with other tasks are kept (e.g. Ant now, Humanoid later)
    saved = a.out / "results.json"
    results: dict = json.loads(saved.read_text()) if saved.is_file() else {}
    for env, name in a.bc:
        results[f"bc-{env}"] = bc_score(env, name, a, a.runs_dir)
    for env, name, expert in a.labels:
        # the recorded benchmark keyed Hopper's curve as "hopper"; new envs by their id
        key = "hopper" if env == "Hopper-v5" else env
        results[key] = labels_curve(env, name, expert, a, a.runs_dir, a.out)
        plot(results[key], env, a.out / f"{env.split('-')[0].lower()}_labels.png")
    atomic_write_json(a.out / "results.json", results, indent=1)


def plot(h: dict, env: str, path: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    n = sorted(h["bc"])
    ax.plot(n, [h["bc"][k] for k in n], "o-", label="BC on the first n expert transitions")
    d = sorted(h["dagger"])
    ax.plot(d, [h["dagger"][k] for k in d], "s-", label="DAgger (1000 labels per round)")
    ax.axhline(h["expert_return"], color="k", ls="--", label=f"expert ({h['expert_return']:.0f})")
    ax.set_xscale("log")
    ax.set_xlabel("expert labels")
    ax.set_ylabel("evaluation return (10 episodes)")
    ax.set_title(f"{env}: return against expert labels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print("wrote", path, np.round([h["bc"][k] for k in n]))


if __name__ == "__main__":
    main()
