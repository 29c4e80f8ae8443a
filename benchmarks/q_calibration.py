"""How well an offline run's critic knows the values of its own dataset.

For each run (its ``latest`` checkpoint by default) and the dataset it trained on, compare the
critic's Q(s, a) on the dataset's own (state, action) pairs with the Monte-Carlo discounted
return that actually followed them in the data, sum_k gamma^k r_{t+k} to the end of the
episode, in the critic's units (rewards through the run's reward scale and bias, as in training). Only rows at least ``--horizon`` steps before their episode's end are used, so that
the return cut by a time limit misses at most gamma^horizon * max|Q| (0.66 for gamma 0.99,
horizon 500, |Q| <= 100); on data from a near-deterministic expert that return is the
behaviour policy's value, which an offline critic of a policy close to it should match.

Printed per run: the mean critic Q (minimum over the ensemble, as the targets use) and mean
return on those rows, their mean difference and its spread, the correlation, the share of
rows whose Q exceeds the largest discounted return any policy could get (r_max / (1 - gamma)
from the data's largest reward), and the same for Q(s, pi(s)) with the run's policy; then
the mean Q and return by how far into its episode a row lies (0-50 steps, 50-200, 200 on),
since a walker's or hopper's first steps (getting up, starting) are the data's rarest states,
with the margin by which the critic values the policy's action over the data's there.

    python benchmarks/q_calibration.py RUN [RUN ...] [--which latest] [--rows 20000]
        [--horizon 500] [--out FILE]
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from common import emit, report_header


def episode_positions(ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steps into its episode, steps left in it after this row) of every row; rows whose
    ``ends`` is True close an episode (the last row closes one in any case)."""
    rows = np.arange(len(ends))
    last = np.flatnonzero(np.r_[ends[:-1], True])  # each episode's last row
    first = np.r_[0, last[:-1] + 1]
    episode = np.searchsorted(last, rows)
    return rows - first[episode], last[episode] - rows


PHASES = ((0, 50), (50, 200), (200, None))  # steps into the episode


def critic_values(agent, obs: np.ndarray, actions: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """min over the critic ensemble of Q(s, a), the observations normalized as in training."""
    import jax.numpy as jnp

    out = []
    for i in range(0, len(obs), chunk):
        o = jnp.asarray(obs[i:i + chunk])
        if getattr(agent, "stats", None) is not None:
            o = agent.stats.obs(o)
        q = agent.critic.apply_fn(agent.critic.params, o, jnp.asarray(actions[i:i + chunk]))
        out.append(np.asarray(q.min(0)))
    return np.concatenate(out)


def policy_actions(agent, obs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    return np.concatenate([np.asarray(agent.eval_actions(obs[i:i + chunk])[0])
                           for i in range(0, len(obs), chunk)])


def calibrate(run: str, which: str, rows: int, horizon: int, seed: int) -> dict:
    from contrl.data.datasets import load_dataset
    from contrl.rundir import load_agent

    agent, run_cfg, algo_cfg, meta = load_agent(run, which)
    ds = load_dataset(algo_cfg.dataset, run_cfg.env)
    if getattr(agent, "stats", None) is not None:  # the critic learned the transformed reward
        ds = dataclasses.replace(ds, rewards=ds.rewards * float(agent.stats.reward_scale)
                                 + float(agent.stats.reward_bias))
    returns = ds.returns_to_go(algo_cfg.gamma)
    into, to_end = episode_positions(ds.episode_ends)
    usable = np.flatnonzero((to_end >= horizon) | ds.terminals[np.arange(len(ds)) + to_end])
    pick = np.random.default_rng(seed).choice(usable, min(rows, len(usable)), replace=False)
    q_data = critic_values(agent, ds.observations[pick], ds.actions[pick])
    q_pi = critic_values(agent, ds.observations[pick], policy_actions(agent, ds.observations[pick]))
    mc = returns[pick]
    bound = float(ds.rewards.max()) / (1 - algo_cfg.gamma)
    diff = q_data - mc
    into = into[pick]
    phases = {}
    for lo, hi in PHASES:
        rows_in = (into >= lo) & (into < (hi if hi is not None else np.inf))
        phases[f"{lo}-{hi or ''}"] = (float(q_data[rows_in].mean()), float(mc[rows_in].mean()),
                                      int(rows_in.sum()),
                                      float((q_pi - q_data)[rows_in].mean())) if rows_in.any() else None
    return {"run": run, "step": meta.get("step"), "dataset": ds.name, "rows": len(pick),
            "q_data": float(q_data.mean()), "q_pi": float(q_pi.mean()), "mc": float(mc.mean()),
            "diff": float(diff.mean()), "diff_sd": float(diff.std()),
            "diff_p5": float(np.percentile(diff, 5)), "diff_p95": float(np.percentile(diff, 95)),
            "corr": float(np.corrcoef(q_data, mc)[0, 1]), "bound": bound,
            "over_bound": float(np.mean(q_data > bound)), "pi_over_bound": float(np.mean(q_pi > bound)), "phases": phases}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--which", default="latest", choices=("latest", "best"))
    p.add_argument("--rows", type=int, default=20000, help="dataset rows sampled per run")
    p.add_argument("--horizon", type=int, default=500,
                   help="use only rows at least this many steps before a time-limit cut")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="append the Markdown table to this file")
    a = p.parse_args()
    results = [calibrate(r, a.which, a.rows, a.horizon, a.seed) for r in a.runs]
    lines = report_header("Critic values against the data's discounted returns",
                          "q_calibration.py", level=3, minutes=True)
    lines += ["| run | step | rows | mean Q(s, a_data) | mean MC return | Q - MC: mean (sd) "
              "[5%, 95%] | corr | Q(s, a_data) > bound | mean Q(s, pi(s)) | Q(s, pi(s)) > bound |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['run'].rstrip('/').split('/')[-1]} | {r['step']} | {r['rows']} | {r['q_data']:.1f} "
            f"| {r['mc']:.1f} | {r['diff']:+.1f} ({r['diff_sd']:.1f}) [{r['diff_p5']:+.1f}, "
            f"{r['diff_p95']:+.1f}] | {r['corr']:.2f} | {100 * r['over_bound']:.0f}% of "
            f"{r['bound']:.0f} | {r['q_pi']:.1f} | {100 * r['pi_over_bound']:.0f}% |")
    lines += ["", "By steps into the episode (mean Q(s, a_data) / mean MC return, rows; then the "
              "policy's action over the data's, mean Q(s, pi(s)) - Q(s, a_data)):", "",
              "| run | " + " | ".join(f"steps {k}" for k in results[0]["phases"]) + " |",
              "|---|" + "---|" * len(PHASES)]
    for r in results:
        cells = [f"{v[0]:.1f} / {v[1]:.1f} ({v[2]}); {v[3]:+.2f}" if v else "-"
                 for v in r["phases"].values()]
        lines.append(f"| {r['run'].rstrip('/').split('/')[-1]} | " + " | ".join(cells) + " |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
