"""Where CQL's update time goes, and how close it is to what this machine's cores can do.

Measures, on one dataset (any Hopper-v5 dataset: the numbers do not depend on its contents):

1. The machine's float32 matrix-product rate: a chain of (rows x 256) @ (256 x 256) products,
   the shape of the networks' hidden layers, in one jitted loop (GFLOP/s, best of repeats).
2. CQL's compiled K-step update (contrl's defaults: 3x256 networks, twin critics, batch 256,
   10 sampled actions per state for each of the uniform, current-policy and next-policy terms):
   floating-point operations per gradient step as XLA counts them (``cost_analysis`` of the
   compiled update; a ``lax.scan`` body is counted once, so the count is per step), updates/s
   (wall clock) and the resulting GFLOP/s, for ``--n-actions`` values (default 1, 5, 10): the
   cost grows linearly with the sampled actions, and the slope is the penalty's share.
3. The pieces of one step at n_actions=10, each jitted alone on the same shapes: sampling the
   policy's actions (2 x 256 x 10 rows, forward only), the critics' forward and backward pass
   over the 256 x (1 + 3 x 10) (state, action) rows, the logsumexp penalty on its own, and the
   SAC part (actor and temperature). Their times do not add up exactly to the whole update (XLA
   fuses across them), but show where the time goes.
4. Python overhead: the same updates done 1 per call instead of ``--k`` per call.

The roofline is rate / (FLOPs per update): no implementation that does the same arithmetic in
float32 can run faster on these cores.

    python benchmarks/cql_speed.py [--dataset hopper-random-v0] [--k 50] [--repeats 3] [--out FILE]
"""
from __future__ import annotations

import argparse

import numpy as np

from common import best_rate, comma_list, emit, flops, matmul_rate, report_header


def threaded(compiled, agent, *args):
    """A no-argument callable running ``compiled(agent, *args)`` on the agent the previous
    call returned (the update donates its agent's buffers; the agent is copied first, as
    agents made from one dataset share its statistics' arrays)."""
    import jax
    import jax.numpy as jnp

    state = {"agent": jax.tree_util.tree_map(jnp.copy, agent)}

    def call():
        state["agent"], metrics = compiled(state["agent"], *args)
        return metrics
    return call


def agent_and_batches(ds, n_actions: int, k: int, seed: int = 0):
    from contrl.agents.cql import CQL, CQLConfig

    cfg = CQLConfig(n_actions=n_actions)
    agent = CQL.create(cfg, ds.obs_dim, ds.action_dim, seed).fit_dataset(ds, cfg)
    return cfg, agent, ds.sample(np.random.default_rng(0), cfg.batch_size, cfg.gamma, k)


def whole_update(ds, n_actions: int, k: int, repeats: int) -> dict:
    from contrl.agents.cql import CQL

    cfg, agent, batches = agent_and_batches(ds, n_actions, k)
    compiled = CQL.update.lower(agent, batches).compile()
    rate = best_rate(threaded(compiled, agent, batches), (), repeats, k)
    return {"n_actions": n_actions, "gflop": flops(compiled) / 1e9, "rate": rate}


def pieces(ds, k: int, repeats: int) -> list[tuple[str, float, float]]:
    """(piece, ms per gradient step, GFLOP per gradient step) at n_actions=10."""
    import jax
    import jax.numpy as jnp

    from contrl.agents.cql import cql_penalty

    cfg, agent, batches = agent_and_batches(ds, 10, 1)
    batch = jax.tree_util.tree_map(lambda x: jnp.asarray(x[0]), agent.stats.batch(batches))
    B, N, d = cfg.batch_size, cfg.n_actions, ds.action_dim
    key = jax.random.PRNGKey(0)

    def sampling(agent, batch, key):
        k1, k2 = jax.random.split(key)
        a_pi, lp_pi = agent._policy_actions(batch.obs, k1)
        a_next, lp_next = agent._policy_actions(batch.next_obs, k2)
        return a_pi.sum() + a_next.sum() + lp_pi.sum() + lp_next.sum()

    rows = B * (1 + 3 * N)
    obs = jnp.repeat(batch.obs, 1 + 3 * N, axis=0)
    act = jax.random.uniform(key, (rows, d), minval=-1.0, maxval=1.0)

    def critic_pass(agent, obs, act):
        def loss(params):
            q = agent.critic.apply_fn(params, obs, act)
            return jnp.sum(q * q)
        return jax.grad(loss)(agent.critic.params)

    q = jax.random.normal(key, (2, B * (1 + 3 * N)))
    lp = jax.random.normal(key, (B, N))

    def penalty(q, lp):
        def f(q):
            qd = q[:, :B]
            qr, qp, qn = jnp.split(q[:, B:].reshape(-1, 3, B, N), 3, axis=1)
            return jnp.sum(cql_penalty(qd, qr[:, 0], qp[:, 0], lp, qn[:, 0], lp, d))
        return jax.grad(f)(q)

    def sac_part(agent, batch, key):
        actor, loss, entropy = agent._actor_step(batch, key)
        return actor, agent._alpha_step(entropy)

    out = []
    for name, fn, args in (
            ("policy samples at s and s' (5120 rows, forward)", sampling, (agent, batch, key)),
            ("critics forward + backward (7936 rows, 2 critics)", critic_pass, (agent, obs, act)),
            ("logsumexp penalty and its gradient", penalty, (q, lp)),
            ("SAC part: actor and temperature step (256 rows)", sac_part, (agent, batch, key))):
        compiled = jax.jit(fn).lower(*args).compile()
        rate = best_rate(compiled, args, repeats * 5, 1)
        out.append((name, 1e3 / rate, flops(compiled) / 1e9))
    return out


def python_overhead(ds, k: int, repeats: int) -> tuple[float, float]:
    """Updates/s with ``k`` gradient steps per compiled call and with one per call."""
    from contrl.agents.cql import CQL

    cfg, agent, batches = agent_and_batches(ds, 10, k)
    _, _, one = agent_and_batches(ds, 10, 1)
    many = CQL.update.lower(agent, batches).compile()
    single = CQL.update.lower(agent, one).compile()

    step = threaded(single, agent, one)

    def loop():
        for _ in range(k):
            metrics = step()
        return metrics

    return (best_rate(threaded(many, agent, batches), (), repeats, k),
            best_rate(loop, (), repeats, k))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="hopper-random-v0")
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--k", type=int, default=50, help="gradient steps per compiled call")
    p.add_argument("--n-actions", type=comma_list, default="1,5,10")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="append the Markdown record to this file")
    a = p.parse_args()

    import os

    from contrl.data.datasets import load_dataset

    ds = load_dataset(a.dataset, a.env)
    load0 = os.getloadavg()[0]
    peak = max(matmul_rate(rows, a.repeats) for rows in (256, 2048, 8192))
    runs = [whole_update(ds, int(n), a.k, a.repeats) for n in a.n_actions]
    parts = pieces(ds, a.k, a.repeats)
    batched, single = python_overhead(ds, a.k, a.repeats)
    load1 = os.getloadavg()[0]

    lines = report_header("CQL update: where the time goes", "cql_speed.py", level=3,
                          minutes=True, settings=f"dataset {a.dataset} ({len(ds)} transitions); "
                          f"1-minute load {load0:.1f} -> {load1:.1f}")
    lines += [f"float32 matrix products on this machine: **{peak:.0f} GFLOP/s** (best of "
              "256/2048/8192-row chains of 256x256 products)", "",
              "| n_actions | GFLOP per update (XLA) | updates/s | GFLOP/s | share of the "
              "matmul rate | roofline (updates/s) |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['n_actions']} | {r['gflop']:.2f} | {r['rate']:.1f} | "
                     f"{r['rate'] * r['gflop']:.0f} | {100 * r['rate'] * r['gflop'] / peak:.0f}% "
                     f"| {peak / r['gflop']:.1f} |")
    if len(runs) >= 2:
        slope = (runs[-1]["gflop"] - runs[0]["gflop"]) / (runs[-1]["n_actions"] - runs[0]["n_actions"])
        fixed = runs[0]["gflop"] - slope * runs[0]["n_actions"]
        at10 = fixed + 10 * slope
        lines += ["", f"FLOPs per update = {fixed:.2f} + {slope:.2f} x n_actions GFLOP: at "
                  f"n_actions = 10 the penalty's sampled actions are "
                  f"{100 * 10 * slope / at10:.0f}% of the arithmetic."]
    lines += ["", "Pieces of one gradient step (n_actions = 10), each jitted alone:", "",
              "| piece | ms | GFLOP |", "|---|---|---|"]
    lines += [f"| {name} | {ms:.1f} | {g:.2f} |" for name, ms, g in parts]
    lines += ["", f"Python overhead: {batched:.1f} updates/s with {a.k} gradient steps per "
              f"compiled call, {single:.1f} with one per call."]
    emit(lines, a.out)


if __name__ == "__main__":
    main()
