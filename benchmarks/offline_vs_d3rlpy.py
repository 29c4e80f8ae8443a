"""Offline RL (IQL, CQL, TD3+BC): contrl vs d3rlpy on the same dataset, same number of
gradient updates: updates/s and the evaluation score after training.

Both libraries train on the same transitions of a contrl dataset (actions in [-1, 1]; d3rlpy gets
the same transitions, see ``to_mdp_dataset``), with each algorithm configured as in contrl's
defaults (see ``d3rlpy_algo`` for the mapping), and are evaluated with the same deterministic
episodes (``contrl.evaluate``). Updates/s is taken over all updates but the first ``--warmup``
(and, for contrl, excluding compilation); it includes batch sampling, as both libraries' own
training loops do. For each algorithm the libraries run back to back (interleaved), so machine
load hits them alike. d3rlpy runs on the CPU with ``--torch-threads`` threads. The table gives
the 1-minute load average before and after each training: torch's thread pool degrades badly
when the cores are shared with other processes (measured here with another job running: d3rlpy
IQL at 50 updates/s with 1 torch thread, 1.7 with 2), so compare rates from quiet runs only.
With ``--roofline`` the record adds, per algorithm, the floating-point operations of contrl's
gradient step (as XLA counts them) and this process's float32 matrix-product rate: their
quotient is the most updates/s any implementation of the same arithmetic gets on these cores,
so it bounds the contrl / d3rlpy ratio that is reachable.

Across seeds (``--seeds 0,1,2,3``) with ``--eval-every N`` both libraries' policies are also
evaluated every N updates (evaluation time is left out of updates/s); ``--curves DIR`` then
writes the curves (curves.json), a plot per algorithm and a summary over seeds (summary.md: the
final score and the mean of each run's last 3 evaluations, with 95% bootstrap intervals).

    python benchmarks/offline_vs_d3rlpy.py [--algos iql,cql,td3bc] [--dataset hopper-medium-v0]
        [--env Hopper-v5] [--updates 20000] [--eval-episodes 10] [--libs contrl,d3rlpy] [--out FILE]
        [--seeds 0,1,2,3 --eval-every 5000 --curves DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from common import (atomic_write_json, atomic_write_text, comma_list, emit, flops, int_list,
                    matmul_rate, mean_interval, pyplot, report_header, run_interleaved,
                    save_figure)

ALGOS = ("iql", "cql", "td3bc")
LIBS = ("contrl", "d3rlpy")


# --------------------------------------------------------------------------------- contrl
def contrl_config(algo: str, updates: int, env_id: str, preset: bool = False,
                  dataset: str = "benchmark"):
    """contrl's config for ``algo`` as ``contrl train`` builds it for ``updates`` steps: the
    defaults, or with ``preset`` also contrl's preset for ``env_id`` (e.g. IQL's AntMaze
    setting: expectile 0.9, beta 10, r - 1). Returns (run config, algo config)."""
    from contrl.resolve import build_configs

    return build_configs(algo, env_id, {"steps": updates, "dataset": dataset},
                         use_preset=preset)


def chunk_sizes(updates: int, warmup: int, chunk: int) -> list[int]:
    """Updates per compiled call: ``warmup`` first (untimed), then ``chunk`` at a time."""
    rest = updates - warmup
    k = min(chunk, rest)
    return [warmup] + [k] * (rest // k) + ([rest % k] if rest % k else [])


def train_contrl(algo: str, ds, updates: int, warmup: int, seed: int, chunk: int,
                 log_every: int, env_id: str, preset: bool, evals=None) -> dict:
    """``evals`` (an ``Evaluations``), if given, evaluates the policy at the first chunk
    boundary past each of its points; that time is left out of the timing."""
    import jax

    from contrl.registry import REGISTRY

    agent_cls = REGISTRY[algo][1]
    cfg = contrl_config(algo, updates, env_id, preset)[1]
    agent = agent_cls.create(cfg, ds.obs_dim, ds.action_dim, seed).fit_dataset(ds, cfg)
    rng = np.random.default_rng(seed)
    sizes = chunk_sizes(updates, warmup, chunk or cfg.steps_per_call)
    # compile every call shape ahead (untimed); the timed calls run the compiled programs
    t0 = time.perf_counter()
    shape_rng = np.random.default_rng(0)
    compiled = {k: agent_cls.update.lower(agent, ds.sample(shape_rng, cfg.batch_size, cfg.gamma, k)).compile()
                for k in sorted(set(sizes))}
    compile_s = time.perf_counter() - t0
    gflop = flops(compiled[max(compiled)]) / 1e9  # one gradient step (the scan body)
    agent, _ = compiled[sizes[0]](agent, ds.sample(rng, cfg.batch_size, cfg.gamma, sizes[0]))
    jax.block_until_ready(agent)
    done, sample_s, paused, t0 = sizes[0], 0.0, 0.0, time.perf_counter()
    for k in sizes[1:]:
        ts = time.perf_counter()
        batch = ds.sample(rng, cfg.batch_size, cfg.gamma, k)
        sample_s += time.perf_counter() - ts
        agent, _ = compiled[k](agent, batch)
        done += k
        if log_every and done // log_every > (done - k) // log_every:
            jax.block_until_ready(agent)
            elapsed = time.perf_counter() - t0 - paused
            print(f"  contrl {algo}: {done}/{updates} updates, "
                  f"{(done - sizes[0]) / elapsed:.1f} updates/s", flush=True)
        if evals is not None and evals.due(done):
            jax.block_until_ready(agent)  # the updates so far count as training time
            tp = time.perf_counter()
            evals(done, agent)
            paused += time.perf_counter() - tp
    jax.block_until_ready(agent)
    seconds = time.perf_counter() - t0 - paused
    return {"agent": agent, "policy": agent,
            "timed_updates": updates - sizes[0], "seconds": seconds, "sample_s": sample_s,
            "compile_s": compile_s, "gflop": gflop}


# --------------------------------------------------------------------------------- d3rlpy
def to_mdp_dataset(ds):
    """The contrl dataset as a d3rlpy MDPDataset holding the same transitions.

    d3rlpy takes the next observation of a transition from the next row of its episode and
    drops the last transition of an episode that did not terminate (it has no next row). So
    after each episode that ends without termination (time limit, or end of the data) one
    filler row is inserted: its observation is that transition's real next observation and it
    is the episode's timeout row (its own transition, action 0 and reward 0, is never sampled).
    A terminated episode's last transition needs no next observation (d3rlpy masks it)."""
    import d3rlpy

    ends = np.flatnonzero(ds.episode_ends)
    terminals = ds.terminals.astype(bool)
    # within an episode, d3rlpy's next observation (the next row) must be contrl's
    inner = np.ones(len(ds), bool)
    inner[ends] = False
    inner[-1] = False
    idx = np.flatnonzero(inner)
    bad = int(np.sum(np.any(ds.next_observations[idx] != ds.observations[idx + 1], axis=1)))
    if bad:
        print(f"warning: {bad} mid-episode transitions have a next observation other than the "
              "next row's observation; d3rlpy uses the next row's", file=sys.stderr, flush=True)
    open_ends = ends[~terminals[ends]]  # episodes ending without termination get a filler row
    at = open_ends + 1
    obs = np.insert(ds.observations, at, ds.next_observations[open_ends], axis=0)
    actions = np.insert(ds.actions, at, np.zeros(ds.action_dim, np.float32), axis=0)
    rewards = np.insert(ds.rewards, at, 0.0).astype(np.float32)
    term = np.insert(terminals, at, False)
    timeout = np.zeros(len(ds), bool)
    timeout = np.insert(timeout, at, True)
    # a terminated episode ends at its terminal row (the Minari truncation flag can be set there too)
    return d3rlpy.dataset.MDPDataset(
        observations=obs.astype(np.float32), actions=actions.astype(np.float32),
        rewards=rewards, terminals=term.astype(np.float32), timeouts=timeout.astype(np.float32),
        action_space=d3rlpy.ActionSpace.CONTINUOUS, action_size=ds.action_dim)


def d3rlpy_algo(algo: str, ds, updates: int, cfg):
    """The d3rlpy config closest to contrl's ``cfg`` (contrl's defaults)."""
    import d3rlpy
    from d3rlpy.models.encoders import VectorEncoderFactory
    from d3rlpy.optimizers import AdamFactory
    from d3rlpy.optimizers.lr_schedulers import CosineAnnealingLRFactory
    from d3rlpy.preprocessing import (ConstantShiftRewardScaler, MultiplyRewardScaler,
                                      StandardObservationScaler)

    from contrl.agents.offline import reward_transform

    enc = VectorEncoderFactory(hidden_units=list(cfg.hidden))
    common = dict(batch_size=cfg.batch_size, gamma=cfg.gamma, tau=cfg.tau,
                  n_critics=cfg.n_critics, actor_encoder_factory=enc, critic_encoder_factory=enc)
    if cfg.normalize_obs:  # contrl: (x - mean) / max(std, 1e-3); d3rlpy: (x - mean) / (std + eps)
        common["observation_scaler"] = StandardObservationScaler(
            mean=ds.observations.mean(0).astype(np.float64),
            std=np.maximum(ds.observations.std(0), 1e-3).astype(np.float64), eps=0.0)
    scale, bias = reward_transform(ds.episode_returns, cfg.reward_normalization)
    if bias != 0.0 and scale != 1.0:
        raise SystemExit(f"reward_normalization={cfg.reward_normalization} has no d3rlpy "
                         "counterpart here")
    if bias != 0.0:  # antmaze: r - 1
        common["reward_scaler"] = ConstantShiftRewardScaler(shift=float(bias))
    elif scale != 1.0:
        common["reward_scaler"] = MultiplyRewardScaler(multiplier=float(scale))
    if algo == "iql":
        actor_optim = AdamFactory(lr_scheduler_factory=CosineAnnealingLRFactory(
            T_max=cfg.actor_decay_steps)) if cfg.actor_decay_steps > 0 else AdamFactory()
        return d3rlpy.algos.IQLConfig(
            actor_learning_rate=cfg.lr, critic_learning_rate=cfg.lr,
            actor_optim_factory=actor_optim, value_encoder_factory=enc, expectile=cfg.expectile,
            weight_temp=cfg.beta, max_weight=cfg.max_weight, **common)
    if algo == "td3bc":
        return d3rlpy.algos.TD3PlusBCConfig(
            actor_learning_rate=cfg.lr, critic_learning_rate=cfg.lr,
            target_smoothing_sigma=cfg.policy_noise, target_smoothing_clip=cfg.noise_clip,
            alpha=cfg.alpha, update_actor_interval=cfg.policy_delay, **common)
    if algo == "cql":
        if cfg.lagrange or not cfg.importance_sample or cfg.temperature != 1.0 or cfg.backup_entropy:
            raise SystemExit("this CQL configuration has no d3rlpy counterpart here")
        return d3rlpy.algos.CQLConfig(
            actor_learning_rate=cfg.actor_lr, critic_learning_rate=cfg.lr,
            temp_learning_rate=cfg.lr if cfg.autotune_alpha else 0.0,
            initial_temperature=cfg.init_alpha,
            # fixed penalty weight: initial_alpha * conservative_weight, no dual updates
            # (alpha_learning_rate=0 leaves log alpha untrained; alpha_threshold then only
            # shifts the loss by a constant)
            alpha_learning_rate=0.0, initial_alpha=1.0, conservative_weight=cfg.cql_alpha,
            n_action_samples=cfg.n_actions, soft_q_backup=False, max_q_backup=False, **common)
    raise ValueError(algo)


class D3rlpyPolicy:
    """A d3rlpy model as a contrl policy (no carried state) for ``contrl.evaluate``."""

    def __init__(self, model):
        self.model = model

    def initial_carry(self, num_envs: int):
        return ()

    def eval_actions(self, obs, carry=()):
        return self.model.predict(np.asarray(obs, np.float32)), carry


def train_d3rlpy(algo: str, ds, updates: int, warmup: int, seed: int, threads: int,
                 log_every: int, env_id: str, preset: bool, evals=None) -> dict:
    """As ``train_contrl`` (``evals`` is checked after every update)."""
    import d3rlpy
    import torch

    torch.set_num_threads(threads)
    d3rlpy.seed(seed)
    cfg = contrl_config(algo, updates, env_id, preset)[1]
    dataset = to_mdp_dataset(ds)
    model = d3rlpy_algo(algo, ds, updates, cfg).create(device="cpu:0")
    model.build_with_dataset(dataset)
    bs = cfg.batch_size
    for _ in range(warmup):
        model.update(dataset.sample_transition_batch(bs))
    policy = D3rlpyPolicy(model)
    sample_s, paused, t0 = 0.0, 0.0, time.perf_counter()
    for i in range(warmup, updates):
        ts = time.perf_counter()
        batch = dataset.sample_transition_batch(bs)
        sample_s += time.perf_counter() - ts
        model.update(batch)
        if log_every and (i + 1) % log_every == 0:
            print(f"  d3rlpy {algo}: {i + 1}/{updates} updates, "
                  f"{(i + 1 - warmup) / (time.perf_counter() - t0 - paused):.1f} updates/s",
                  flush=True)
        if evals is not None and evals.due(i + 1):
            tp = time.perf_counter()
            evals(i + 1, policy)
            paused += time.perf_counter() - tp
    seconds = time.perf_counter() - t0 - paused
    return {"agent": model, "policy": policy,
            "timed_updates": updates - warmup, "seconds": seconds, "sample_s": sample_s,
            "compile_s": 0.0}


# ------------------------------------------------------------------------------ reporting
def versions() -> str:
    out = [f"Python {platform.python_version()}"]
    for pkg in ("contrl", "jax", "jaxlib", "torch", "d3rlpy", "gymnasium"):
        try:
            out.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            out.append(f"{pkg} (not installed)")
    return ", ".join(out)


def fmt(x, spec: str = ".1f") -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)


def table(rows: list[dict]) -> list[str]:
    lines = ["| algo | library | seed | updates/s | timed updates | sampling share | "
             "load (1 min) | "
             "final return (mean +- std) | normalized score | success rate | "
             "contrl / d3rlpy updates/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rate = {(r["algo"], r["lib"], r["seed"]): r["updates_per_s"] for r in rows}
    for r in rows:
        other = rate.get((r["algo"], "d3rlpy", r["seed"]))
        ratio = r["updates_per_s"] / other if other and r["lib"] == "contrl" else None
        lines.append(
            f"| {r['algo']} | {r['lib']} | {r['seed']} | {r['updates_per_s']:.1f} "
            f"| {r['timed_updates']} "
            f"| {100 * r['sample_share']:.0f}% | {r['load_start']:.1f} -> {r['load_end']:.1f} "
            f"| {r['mean_return']:.1f} +- {r['std_return']:.1f} "
            f"| {fmt(r['normalized_score'])} | {fmt(r.get('success_rate'), '.2f')} "
            f"| {fmt(ratio, '.2f') + 'x' if ratio else '-'} |")
    return lines


class Evaluations:
    """A run's evaluation curve: the policy is evaluated at the first update count past each
    multiple of ``every`` (before the end: the final evaluation follows training)."""

    def __init__(self, every: int, updates: int, evaluate_score):
        self.every, self.updates, self.score = every, updates, evaluate_score
        self.next = every
        self.curve: list[tuple[int, float]] = []

    def due(self, done: int) -> bool:
        return self.next <= done < self.updates

    def __call__(self, done: int, policy) -> None:
        self.curve.append((done, self.score(policy)))
        self.next = (done // self.every + 1) * self.every


def curves_summary(rows: list[dict], out: Path, title: str, note: str = "") -> list[str]:
    """Write ``rows``' evaluation curves (curves.json), one plot per algorithm (each run thin,
    the mean over seeds thick) and summary.md: per algorithm and library, over seeds, the final
    normalized score and the mean of each run's last 3 evaluations, each with its 95% bootstrap
    interval, and the mean updates/s; ``note`` goes under the title. Returns summary.md's
    lines."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "curves.json", [
        {k: r[k] for k in ("algo", "lib", "seed", "updates_per_s", "normalized_score", "curve")}
        for r in rows])

    def mean_ci(values: list[float]) -> str:
        m, lo, hi = mean_interval(values)
        return f"{m:.1f}" if len(values) == 1 else f"{m:.1f} [{lo:.1f}, {hi:.1f}]"

    lines = [title, "", *([note, ""] if note else []),
             "| algo | library | seeds | final score | mean of the last 3 evaluations "
             "| per seed (last 3) | updates/s |", "|---|---|---|---|---|---|---|"]
    plt = pyplot()
    for algo in dict.fromkeys(r["algo"] for r in rows):
        fig, ax = plt.subplots(figsize=(7, 4))
        for c, lib in enumerate(dict.fromkeys(r["lib"] for r in rows if r["algo"] == algo)):
            runs = [r for r in rows if r["algo"] == algo and r["lib"] == lib]
            finals = [r["normalized_score"] for r in runs]
            last3 = [float(np.mean([y for _, y in r["curve"][-3:]])) for r in runs if r["curve"]]
            lines.append(f"| {algo} | {lib} | {len(runs)} | {mean_ci(finals)} | "
                         f"{mean_ci(last3) if last3 else '-'} | "
                         f"{', '.join(f'{v:.1f}' for v in last3) or '-'} | "
                         f"{np.mean([r['updates_per_s'] for r in runs]):.1f} |")
            curves = [np.asarray(r["curve"]) for r in runs if r["curve"]]
            for x_y in curves:
                ax.plot(x_y[:, 0], x_y[:, 1], color=f"C{c}", lw=0.7, alpha=0.5)
            n = min(len(x_y) for x_y in curves) if curves else 0
            if n:
                ax.plot(curves[0][:n, 0], np.mean([x_y[:n, 1] for x_y in curves], 0),
                        color=f"C{c}", lw=2, label=f"{lib} (mean of {len(curves)})")
        save_figure(fig, ax, f"{algo}: {title}", out / f"{algo}.png", xlabel="gradient updates",
                    ylabel="normalized score")
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    return lines


def roofline_lines(rows: list[dict], gflops: float) -> list[str]:
    """Per algorithm: contrl's GFLOP per update, the roofline (the matrix-product rate over
    it), contrl's share of it, and the contrl / d3rlpy ratio the roofline allows."""
    rate = {(r["algo"], r["lib"]): r["updates_per_s"] for r in rows}
    out = [f"roofline: float32 matrix products at {gflops:.1f} GFLOP/s on this process's cores"]
    for r in rows:
        if r["lib"] != "contrl":
            continue
        top = gflops / r["gflop_per_update"]
        peer = rate.get((r["algo"], "d3rlpy"))
        out.append(f"- {r['algo']}: {r['gflop_per_update']:.3f} GFLOP per update -> at most "
                   f"{top:.0f} updates/s; contrl {r['updates_per_s']:.1f} "
                   f"({100 * r['updates_per_s'] / top:.0f}% of it)"
                   + (f"; at most {top / peer:.2f}x d3rlpy's {peer:.1f}" if peer else ""))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algos", type=comma_list, default=",".join(ALGOS),
                   help="comma list of iql, cql, td3bc")
    p.add_argument("--dataset", default="hopper-medium-v0", help="contrl dataset (Minari id, dir, HDF5)")
    p.add_argument("--env", default="Hopper-v5", help="env to evaluate in (contrl id)")
    p.add_argument("--updates", type=int, default=20_000, help="gradient updates per library")
    p.add_argument("--warmup", type=int, default=50, help="first updates left out of the timing")
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int_list, default=None,
                   help="comma list of seeds, each run in turn (overrides --seed)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="also evaluate every N updates (untimed; 0: only at the end)")
    p.add_argument("--curves", default=None,
                   help="folder for curves.json, a plot per algorithm and summary.md over seeds")
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="no training: the --curves summary of the runs in these folders' "
                        "curves.json (seeds run in separate processes), written to --curves")
    p.add_argument("--libs", type=comma_list, default=",".join(LIBS),
                   help="comma list of contrl, d3rlpy")
    p.add_argument("--torch-threads", type=int, default=2, help="torch.set_num_threads for d3rlpy (JAX uses every core)")
    p.add_argument("--chunk", type=int, default=0,
                   help="contrl updates per compiled call (0: the config's steps_per_call)")
    p.add_argument("--log-every", type=int, default=None,
                   help="progress line every N updates (default: a tenth of --updates; 0: off)")
    p.add_argument("--preset", action="store_true",
                   help="contrl's preset for --env (both libraries), e.g. IQL's AntMaze setting")
    p.add_argument("--roofline", action="store_true",
                   help="also record contrl's FLOPs per update and this process's matrix-product "
                        "rate: the most updates/s the same arithmetic allows here")
    p.add_argument("--out", default=None, help="append a Markdown record here (atomically)")
    a = p.parse_args()
    if a.merge:
        if not a.curves:
            p.error("--merge needs --curves (where the merged summary goes)")
        rows = [r for d in a.merge for r in json.loads((Path(d) / "curves.json").read_text())]
        emit(curves_summary(rows, Path(a.curves), f"{a.dataset} on {a.env}, {a.updates} updates",
                            f"Merged from {', '.join(a.merge)}."), None)
        return
    algos, libs = a.algos, a.libs
    for x in algos:
        if x not in ALGOS:
            p.error(f"unknown algo {x} (known: {', '.join(ALGOS)})")
    for x in libs:
        if x not in LIBS:
            p.error(f"unknown library {x} (known: {', '.join(LIBS)})")
    if not 0 < a.warmup < a.updates:
        p.error("need 0 < --warmup < --updates")
    if a.log_every is None:
        a.log_every = max(1, a.updates // 10)
    if a.eval_every < 0:
        p.error("--eval-every must be >= 0")
    seeds = a.seeds if a.seeds else [a.seed]

    from contrl.data.datasets import load_dataset
    from contrl.envs import make_env
    from contrl.evaluate import evaluate
    from contrl.seeding import stream_seed

    ds = load_dataset(a.dataset, a.env)
    env_kwargs = contrl_config(algos[0], a.updates, a.env, a.preset)[0].env_kwargs
    probe = make_env(a.env, **env_kwargs)
    ds.check_env(a.env, probe.observation_space.shape[0], probe.action_space.shape[0])
    probe.close()
    print(f"dataset {ds.name}: {len(ds)} transitions, {len(ds.episode_returns)} complete episodes; "
          f"env {a.env}", flush=True)
    previous = ""
    if a.out and os.path.exists(a.out):
        with open(a.out) as f:
            previous = f.read()
    elif a.out:
        previous = "# Offline RL: contrl vs d3rlpy\n\n"
    header = report_header(
        f"Offline RL, {ds.name} on {a.env}, contrl vs d3rlpy", "offline_vs_d3rlpy.py", level=3,
        minutes=True, settings=f"versions: {versions()}; d3rlpy on CPU with "
        f"{a.torch_threads} torch threads; JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')}\n\n"
        f"settings: {a.updates} gradient updates each (updates/s over all but the first "
        f"{a.warmup}, contrl compilation excluded, batch sampling included), contrl's default "
        f"hyperparameters mirrored in d3rlpy, seed(s) {', '.join(map(str, seeds))}, deterministic "
        f"evaluation over {a.eval_episodes} episodes (contrl.evaluate)"
        + (f" at the end and every {a.eval_every} updates" if a.eval_every else ""))
    rows: list[dict] = []

    for seed, algo in ((seed, algo) for seed in seeds for algo in algos):
        print(f"== {algo} seed {seed}", flush=True)

        def run_eval(policy) -> dict:
            """The deterministic evaluation every score here comes from."""
            return evaluate(policy, a.env, a.eval_episodes,
                            stream_seed(seed, "eval_envs", "offset"), **env_kwargs)

        def run_one(lib: str) -> float:
            evals = (Evaluations(a.eval_every, a.updates,
                                 lambda pol: float(ds.normalized_score(run_eval(pol)["mean_return"])))
                     if a.eval_every else None)
            t0, load_start = time.perf_counter(), os.getloadavg()[0]
            if lib == "contrl":
                res = train_contrl(algo, ds, a.updates, a.warmup, seed, a.chunk, a.log_every,
                                   a.env, a.preset, evals)
            else:
                res = train_d3rlpy(algo, ds, a.updates, a.warmup, seed, a.torch_threads,
                                   a.log_every, a.env, a.preset, evals)
            rate = res["timed_updates"] / res["seconds"]
            load_end = os.getloadavg()[0]  # before evaluation
            ev = run_eval(res["policy"])
            score = ds.normalized_score(ev["mean_return"])
            rows.append({"algo": algo, "lib": lib, "seed": seed, "updates_per_s": rate,
                         "timed_updates": res["timed_updates"],
                         "sample_share": res["sample_s"] / res["seconds"],
                         "compile_s": res["compile_s"], "load_start": load_start,
                         "load_end": load_end, "mean_return": ev["mean_return"],
                         "std_return": ev["std_return"], "normalized_score": score,
                         "success_rate": ev.get("success_rate"),
                         "gflop_per_update": res.get("gflop"),
                         "curve": (evals.curve if evals else []) + [(a.updates, float(score))],
                         "wall_s": time.perf_counter() - t0})
            print(f"{algo} {lib}: {rate:.1f} updates/s, return {ev['mean_return']:.1f} "
                  f"+- {ev['std_return']:.1f}, normalized {fmt(score)} "
                  f"({time.perf_counter() - t0:.0f} s in all)", flush=True)
            return rate

        run_interleaved(libs, 1, run_one)
        if a.out:  # the record so far, so that a crash in a later algorithm keeps it
            atomic_write_text(a.out, previous + "\n".join(header + table(rows)) + "\n\n")
        if a.curves:
            curves_summary(rows, Path(a.curves), f"{ds.name} on {a.env}, {a.updates} updates")

    extra = ["contrl compilation (excluded): " + ", ".join(
        f"{r['algo']} {r['compile_s']:.1f} s" for r in rows if r["lib"] == "contrl")] \
        if any(r["lib"] == "contrl" for r in rows) else []
    if a.roofline:
        extra += roofline_lines(rows, max(matmul_rate(r, 3) for r in (256, 2048)))
    lines = header + table(rows) + ([""] + extra if extra else [])
    emit(lines, None)
    if a.out:
        atomic_write_text(a.out, previous + "\n".join(lines) + "\n\n")
        print(f"appended to {a.out}", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
