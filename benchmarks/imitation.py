"""Imitation benchmark: BC against the expert on Pendulum-v1 and HalfCheetah-v5, and DAgger
against BC on Hopper-v5 as a function of the number of expert labels. Resumable: finished runs
are skipped. Needs the expert datasets made by ``contrl collect`` (see
benchmarks/results/imitation/README.md for the commands). Imitation-seeded SAC (the
``seeded_sac`` algorithm) is run with ``contrl train seeded_sac``, also in that README.

    python benchmarks/imitation.py [--runs-dir benchmarks/runs/imitation] [--out benchmarks/results/imitation]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import atomic_write_json, column, copy_file, pyplot, train_or_resume

BC_SIZES = (1000, 2000, 5000, 10000, 20000, 50000)


def run(algo: str, env: str, opts: dict, path: Path) -> dict:
    """The run's last evaluation, training it first (or resuming it) if it is not finished."""
    opts = {"tensorboard": False, **opts}
    return train_or_resume(algo, env, opts, path, opts.pop("steps"))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs-dir", type=Path, default=Path("benchmarks/runs/imitation"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/imitation"))
    p.add_argument("--hopper-expert", default="benchmarks/runs/grid/sac-Hopper-v5-s0")
    p.add_argument("--bc-steps", type=int, default=20000, help="gradient steps per BC run")
    p.add_argument("--dagger-labels", type=int, default=20000)
    a = p.parse_args()
    from contrl.data.datasets import load_dataset
    a.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for env, name in (("Pendulum-v1", "pendulum-expert-v0"), ("HalfCheetah-v5", "halfcheetah-expert-v0")):
        ds = load_dataset(name, env)
        ev = run("bc", env, dict(dataset=name, steps=a.bc_steps, eval_every=a.bc_steps // 4),
                 a.runs_dir / f"bc-{env}")
        results[f"bc-{env}"] = {"eval_return": ev["mean_return"], "eval_std": ev["std_return"],
                                "normalized_score": ev.get("normalized_score"),
                                "expert_return": ds.ref_max_score, "random_return": ds.ref_min_score,
                                "dataset_average_return": ds.metadata.get("average_return")}
        print(env, results[f"bc-{env}"], flush=True)
    # Hopper: BC on the first n expert transitions vs DAgger with the same number of labels
    ds = load_dataset("hopper-expert-v0", "Hopper-v5")
    bc = {}
    for n in BC_SIZES:
        ev = run("bc", "Hopper-v5", dict(dataset="hopper-expert-v0", dataset_size=n,
                                         steps=a.bc_steps, eval_every=a.bc_steps),
                 a.runs_dir / f"bc-Hopper-v5-n{n}")
        bc[n] = ev["mean_return"]
        print("bc hopper", n, ev["mean_return"], flush=True)
    dagger_dir = a.runs_dir / "dagger-Hopper-v5"
    run("dagger", "Hopper-v5", dict(expert=a.hopper_expert, steps=a.dagger_labels,
                                    steps_per_round=1000, updates_per_round=2000,
                                    eval_every=1000), dagger_dir)
    dagger = {int(s): float(r) for s, r in zip(*column(dagger_dir, "eval_return"))}
    results["hopper"] = {"expert_return": ds.ref_max_score, "bc": bc, "dagger": dagger}
    atomic_write_json(a.out / "results.json", results, indent=1)
    for f in ("progress.csv", "config.json"):
        copy_file(dagger_dir / f, a.out / f"dagger-Hopper-v5-{f}")
    plot(results["hopper"], a.out / "hopper_labels.png")


def plot(h: dict, path: Path) -> None:
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
    ax.set_title("Hopper-v5: return against expert labels")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print("wrote", path, np.round([h["bc"][k] for k in n]))


if __name__ == "__main__":
    main()
