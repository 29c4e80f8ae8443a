"""``contrl report``: what a reviewer wants to see of a set of runs.

Per env and algorithm, the final and best evaluations over seeds with 95% bootstrap intervals;
across envs (normalized: 0 random, 1 the reference of ``references.toml``), IQM, mean, median
and optimality gap with stratified-bootstrap intervals, performance profiles and probability
of improvement, computed with the ``rliable`` library; sample-efficiency curves (IQM over
seeds, with bands) beside the published figures. Where the runs report success (mazes),
the success rates get the same per-task intervals and their own curves, and published figures
marked ``metric = "success_rate"`` (optionally for one ``dataset``) sit beside them. Writes
``report.md``, ``report.json`` and PNG figures.
"""
from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contrl import config as C
from contrl.errors import ContrlError
from contrl.registry import REGISTRY
from contrl.resolve import RESUME_OVERRIDABLE
from contrl.run import (atomic_write_bytes, atomic_write_json, complete_lines, is_online_phase,
                        saved_config)

REFERENCES = Path(__file__).parent / "references.toml"


@dataclass
class RunCurve:
    """One run's evaluations: where it is, what it trained, and (step, mean return) pairs."""

    path: Path
    algo: str
    env: str
    seed: int
    steps: np.ndarray
    returns: np.ndarray
    config: dict
    """Its configuration values (run and algorithm), to tell settings apart."""
    successes: np.ndarray | None = None
    """Its evaluations' success rates, where the env reports success at every evaluation."""
    times: np.ndarray | None = None
    """Wall-clock seconds at each evaluation (progress.csv's time), where every row has it."""
    last_step: int = 0
    """The step of its latest evaluation, also when the report only uses earlier ones."""
    online: bool = False
    """Whether it is an offline run's online phase (``<run>/online``: env steps, its own row)."""

    @property
    def final(self) -> float:
        return float(self.returns[-1])

    @property
    def best(self) -> float:
        """Its best finite evaluation (NaN if it has none)."""
        finite = self.returns[np.isfinite(self.returns)]
        return float(finite.max()) if finite.size else float("nan")


def load_references(path: Path = REFERENCES) -> dict:
    with Path(path).open("rb") as f:
        return tomllib.load(f)


def read_curve(run_dir: Path, up_to: int | None = None) -> RunCurve | None:
    """The evaluations of a run directory, those at or before env step ``up_to`` if given
    (None if there are none)."""
    saved = saved_config(run_dir)
    steps, returns, successes, times = [], [], [], []
    last_step = 0
    path = run_dir / "progress.csv"
    if path.is_file():
        try:
            for row in csv.DictReader(complete_lines(path)[0]):
                value = row.get("eval_return")
                if value not in (None, ""):
                    last_step = int(row["step"])
                    if up_to is not None and last_step > up_to:
                        continue
                    steps.append(last_step)
                    returns.append(float(value))
                    success = row.get("eval_success_rate")
                    successes.append(None if success in (None, "") else float(success))
                    times.append(None if row.get("time") in (None, "") else float(row["time"]))
        except (ValueError, TypeError, KeyError, UnicodeDecodeError, csv.Error) as e:
            raise ContrlError(f"{path} is not a readable progress log ({e})") from None
    if not steps:
        return None
    algo, env, seed = saved["algo"], saved["run"].get("env"), saved["run"].get("seed")
    if not (isinstance(algo, str) and isinstance(env, str) and type(seed) is int):
        raise ContrlError(f"{run_dir / 'config.json'} does not name the run's algorithm, env "
                          f"and integer seed (algo {algo!r}, env {env!r}, seed {seed!r})")
    length = saved["run"].get("steps", C.RunConfig.steps)
    if type(length) is not int or length <= 0:
        raise ContrlError(f"{run_dir / 'config.json'}: steps must be a positive integer, got "
                          f"{length!r}")
    return RunCurve(run_dir, algo, env, seed,
                    np.asarray(steps), np.asarray(returns),
                    {**_defaults(algo), **saved["algo_config"], **saved["run"]},
                    None if None in successes else np.asarray(successes),
                    None if None in times else np.asarray(times), last_step,
                    is_online_phase(run_dir))


def _defaults(algo: str) -> dict:
    """Default values of the run's and the algorithm's fields: a run saved before a field
    existed had its default, or the class's FORMER_DEFAULTS value (so it is not a different
    setting)."""
    classes = [C.RunConfig] + ([REGISTRY[algo][0]] if algo in REGISTRY else [])
    return {**{f.name: list(f.default) if isinstance(f.default, tuple) else f.default
               for cls in classes for f in dataclasses.fields(cls)
               if f.default is not dataclasses.MISSING},
            **{k: v for cls in classes for k, v in cls.FORMER_DEFAULTS.items()}}


def find_runs(dirs: list[str], step: int | None = None,
              unevaluated: list[str] | None = None) -> list[RunCurve]:
    """Every run directory (holding config.json) at or below the given directories, with its
    evaluations up to ``step`` (None: all); those without any are appended to
    ``unevaluated`` if given."""
    runs, seen = [], set()
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise ContrlError(f"{root} is not a directory")
        for cfg in sorted(root.rglob("config.json")):
            run_dir = cfg.parent.resolve()
            if run_dir in seen:
                continue
            seen.add(run_dir)
            phases = [cfg.parent] + ([cfg.parent / "online"]
                                     if is_online_phase(cfg.parent / "online") else [])
            for phase in phases:  # an offline run's online phase is reported as its own run
                curve = read_curve(phase, step)
                if curve is not None:
                    runs.append(curve)
                elif unevaluated is not None:
                    unevaluated.append(str(phase))
    if not runs:
        raise ContrlError(f"no evaluated runs in {', '.join(dirs)} (no config.json with "
                          "evaluations in progress.csv below them"
                          + (f" at or before step {step})" if step is not None else ")"))
    return runs


# settings that do not change what a run learns: runs differing only in these are seeds of
# one setting (what a resume may change is such a setting, but for the length and its stop)
BOOKKEEPING = {"seed", "seed_streams", "runs_dir", "eval_episodes", "best_metric"} | (
    RESUME_OVERRIDABLE - {"steps", "online_steps", "stop_at_return"})


def setting_label(run: RunCurve, varying: list[str]) -> str:
    """The algorithm's name, with the values of ``varying`` fields (e.g. ``sac[lr=0.001]``)."""
    if not varying:
        return run.algo
    return run.algo + "[" + ",".join(f"{k}={run.config.get(k)}" for k in varying) + "]"


def group(runs: list[RunCurve]) -> dict[tuple[str, str], list[RunCurve]]:
    """(env, setting) -> runs, each list ordered by seed. A setting is the algorithm, plus the
    config values in which runs of that env and algorithm differ (a sweep's --set axes)."""
    by_algo: dict[tuple[str, str, bool], list[RunCurve]] = {}
    for r in runs:
        by_algo.setdefault((r.env, r.algo, r.online), []).append(r)
    out: dict[tuple[str, str], list[RunCurve]] = {}
    for (env, _, online), rs in sorted(by_algo.items()):
        keys = sorted({k for r in rs for k in r.config} - BOOKKEEPING)
        varying = [k for k in keys if len({repr(r.config.get(k)) for r in rs}) > 1]
        for r in sorted(rs, key=lambda r: r.seed):
            label = setting_label(r, varying) + (" online phase" if online else "")
            out.setdefault((env, label), []).append(r)
    for (env, label), rs in out.items():
        for a, b in zip(rs, rs[1:]):
            if a.seed == b.seed:  # a copied run counted twice would narrow the interval
                raise ContrlError(f"{a.path} and {b.path} are both seed {a.seed} of {label} on "
                                  f"{env} (a copy, one run twice, or the seed under both "
                                  "seed_streams?): give each seed once (pass their folders to "
                                  "separate contrl report commands)")
    return out


def published_for(refs: dict, env: str, run: RunCurve, metric: str = "return") -> list[dict]:
    """The published figures for ``run``'s algorithm on ``env`` in ``metric`` ("return", the
    default of an entry, or "success_rate"); an entry naming a ``dataset`` matches only runs
    trained on it. Envs and datasets listed in ``aliases`` take the figures of the names they
    stand for."""
    if run.online:  # published offline figures are not the fine-tuned policy's
        return []
    aliases = refs.get("aliases", {})
    env = aliases.get(env, env)
    dataset = run.config.get("dataset")
    dataset = aliases.get(dataset, dataset)
    return [p for p in refs.get("published", [])
            if p["env"] == env and p["algo"] == run.algo
            and p.get("metric", "return") == metric
            and p.get("dataset", dataset) == dataset]


def has_successes(rs: list[RunCurve]) -> bool:
    return all(r.successes is not None for r in rs)


def normalize(value, env: str, refs: dict):
    n = refs.get("normalize", {}).get(env)
    if n is None:
        return None
    return (np.asarray(value, float) - n["random"]) / (n["expert"] - n["random"])


def _rliable():
    try:
        from rliable import library as rly
        from rliable import metrics
    except ImportError:
        raise ContrlError("contrl report needs rliable: pip install 'contrl[report]'") from None
    return rly, metrics


AGGREGATES = ("IQM", "mean", "median", "optimality gap")


def aggregate_fn(metrics):
    """Scores (runs x tasks) -> the four aggregate metrics, as rliable defines them."""
    return lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_mean(s),
                               metrics.aggregate_median(s), metrics.aggregate_optimality_gap(s)])


FEW_SEEDS = 5
"""Below this many seeds a percentile bootstrap interval covers the mean less often than it
says (over 3 seeds it cannot reach beyond the seeds' own range): the report says so."""


def interval(values: np.ndarray, reps: int, seed: int) -> tuple[float, float | None, float | None]:
    """Mean over seeds and its 95% bootstrap interval (one task: the stratified bootstrap of
    rliable over runs); one seed has no interval (None, None), not one of width 0."""
    if len(values) < 2:
        return float(np.mean(values)), None, None
    rly, metrics = _rliable()
    np.random.seed(seed)  # rliable draws from numpy's global generator
    point, ci = rly.get_interval_estimates({"x": np.asarray(values, float)[:, None]},
                                           lambda s: np.array([metrics.aggregate_mean(s)]),
                                           reps=reps)
    return float(point["x"][0]), float(ci["x"][0, 0]), float(ci["x"][1, 0])


def per_task_table(groups, reps: int, seed: int, refs: dict) -> list[dict]:
    rows = []
    for (env, algo), rs in groups.items():
        final = np.array([r.final for r in rs])
        best = np.array([r.best for r in rs])
        f, flo, fhi = interval(final, reps, seed)
        b, blo, bhi = interval(best, reps, seed)
        norm = normalize(final.mean(), env, refs)
        row = {"env": env, "algo": algo, "seeds": [r.seed for r in rs],
               "steps": int(min(r.steps[-1] for r in rs)),
               "final": [f, flo, fhi], "best": [b, blo, bhi],
               "final_per_seed": final.tolist(),
               "normalized_final": None if norm is None else float(norm),
               "wall_time": (float(np.median([r.times[-1] for r in rs]))
                             if all(r.times is not None for r in rs) else None),
               "published": published_for(refs, env, rs[0])}
        if has_successes(rs):
            final_rate = np.array([r.successes[-1] for r in rs])
            best_rate = np.array([r.successes.max() for r in rs])
            row["success"] = {"final": list(interval(final_rate, reps, seed)),
                              "best": list(interval(best_rate, reps, seed)),
                              "final_per_seed": final_rate.tolist(),
                              "datasets": sorted({str(r.config.get("dataset") or "-") for r in rs}),
                              "published": published_for(refs, env, rs[0], "success_rate")}
        rows.append(row)
    return rows


def score_matrices(groups, refs: dict, pick: str = "final") -> tuple[dict, list[str], list[str]]:
    """algo -> normalized scores (runs x envs), over the envs that have a normalization and
    that every algorithm ran; every env and algorithm cut to the fewest seeds any of them has
    (one runs x envs matrix per algorithm, the same shape for all). Returns (matrices, envs
    used, notes)."""
    notes = []
    if any(rs[0].online for rs in groups.values()):
        notes.append("online phases are left out of the aggregates (shown per env)")
        groups = {k: rs for k, rs in groups.items() if not rs[0].online}
    algos = sorted({a for _, a in groups})
    envs = sorted({e for e, _ in groups})
    usable = []
    for env in envs:
        if env not in refs.get("normalize", {}):
            notes.append(f"{env}: no normalization in references.toml, left out of the aggregates")
        elif any((env, a) not in groups for a in algos):
            notes.append(f"{env}: not every algorithm ran it, left out of the aggregates")
        else:
            usable.append(env)
    if not usable:
        return {}, [], notes
    n = min(len(groups[(e, a)]) for e in usable for a in algos)
    if any(len(groups[(e, a)]) != n for e in usable for a in algos):
        notes.append(f"aggregates use the first {n} seeds of each env and algorithm")
    mats = {}
    for a in algos:
        cols = []
        for e in usable:
            vals = [getattr(r, pick) for r in groups[(e, a)][:n]]
            cols.append(normalize(vals, e, refs))
        mats[a] = np.stack(cols, axis=1)
    return mats, usable, notes


def aggregates(mats: dict, reps: int, seed: int) -> dict:
    """The aggregate metrics of each algorithm with their intervals (none over one run per
    env: resampling one run gives an interval of width 0)."""
    rly, metrics = _rliable()
    if next(iter(mats.values())).shape[0] < 2:
        fn = aggregate_fn(metrics)
        return {a: {m: [float(v), None, None] for m, v in zip(AGGREGATES, fn(s))}
                for a, s in mats.items()}
    np.random.seed(seed)
    point, ci = rly.get_interval_estimates(mats, aggregate_fn(metrics), reps=reps)
    return {a: {m: [float(point[a][i]), float(ci[a][0, i]), float(ci[a][1, i])]
                for i, m in enumerate(AGGREGATES)} for a in mats}


def improvement(mats: dict, reps: int, seed: int) -> dict:
    """P(X > Y) for every ordered pair of algorithms (keyed "X > Y"), with its interval."""
    rly, metrics = _rliable()
    pairs = {f"{x} > {y}": (mats[x], mats[y]) for x, y in itertools.permutations(sorted(mats), 2)}
    if not pairs:
        return {}
    if next(iter(mats.values())).shape[0] < 2:  # one run per env: no interval
        return {k: [float(np.ravel(metrics.probability_of_improvement(x, y))[0]), None, None]
                for k, (x, y) in pairs.items()}
    np.random.seed(seed)
    point, ci = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps)
    return {k: [float(np.ravel(point[k])[0]), float(np.ravel(ci[k])[0]), float(np.ravel(ci[k])[1])]
            for k in pairs}


def common_grid(rs: list[RunCurve]) -> np.ndarray:
    """The evaluation steps every run of a group has."""
    steps = set(rs[0].steps.tolist())
    for r in rs[1:]:
        steps &= set(r.steps.tolist())
    return np.array(sorted(steps))


def curves(groups, reps: int, seed: int, metric: str = "return") -> dict:
    """(env, algo) -> (steps, IQM, low, high) over seeds at the steps all its runs share, of
    the evaluation return or (``metric="success_rate"``, groups that report it) success rate."""
    rly, metrics = _rliable()
    out = {}
    for key, rs in groups.items():
        grid = common_grid(rs)
        if len(grid) == 0 or (metric == "success_rate" and not has_successes(rs)):
            continue
        values = [r.successes if metric == "success_rate" else r.returns for r in rs]
        scores = np.stack([np.interp(grid, r.steps, v) for r, v in zip(rs, values)])  # runs x steps
        if len(rs) < 2:  # one run: its curve, no band (resampling one run gives width 0)
            out[key] = (grid, scores[0], None, None)
            continue
        arr = scores[:, None, :]  # runs x 1 task x steps
        np.random.seed(seed)
        point, ci = rly.get_interval_estimates(
            {"x": arr}, lambda s: np.array([metrics.aggregate_iqm(s[..., t])
                                            for t in range(s.shape[-1])]), reps=reps)
        out[key] = (grid, point["x"], ci["x"][0], ci["x"][1])
    return out


# ---------------------------------------------------------------------------- figures
def _save(fig, path: Path) -> None:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


# what a run's step counts, by the loop kind of its algorithm (registry); else env steps
STEP_UNITS = {"offline": "gradient steps", "mopo": "gradient steps", "dagger": "expert labels"}


def step_label(kinds: set[str]) -> str:
    """The x-axis label of curves of runs of these loop kinds."""
    units = sorted({STEP_UNITS.get(kind, "env steps") for kind in kinds} or {"env steps"})
    return units[0] if len(units) == 1 else f"steps ({', '.join(units)})"


def plot_curves(curve_data: dict, refs: dict, out: Path, groups: dict,
                metric: str = "return") -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = []
    for env in sorted({e for e, _ in curve_data}):
        fig, ax = plt.subplots(figsize=(6, 4))
        drawn = set()  # settings of one algorithm share its published figures: draw them once
        for i, ((e, algo), (grid, iqm, lo, hi)) in enumerate(sorted(curve_data.items())):
            if e != env:
                continue
            color = f"C{i % 10}"
            ax.plot(grid, iqm, color=color, label=f"{algo} (IQM over seeds)" if lo is not None
                    else f"{algo} (1 seed)")
            if lo is not None:
                ax.fill_between(grid, lo, hi, color=color, alpha=0.2)
            run = groups[(e, algo)][0]
            for p in published_for(refs, env, run, metric):
                if (run.algo, p["source"], p["value"]) in drawn:
                    continue
                drawn.add((run.algo, p["source"], p["value"]))
                ax.axhline(p["value"], color=color, ls="--", lw=0.8)
                ax.annotate(f"{run.algo} {p['source']} @{p['steps'] // 1000}k",
                            (grid[0], p["value"]), fontsize=7, color=color, va="bottom")
        ax.set_xlabel(step_label({"offpolicy" if groups[key][0].online
                                  else REGISTRY[groups[key][0].algo][2] for key in curve_data
                                  if key[0] == env and groups[key][0].algo in REGISTRY}))
        ax.set_ylabel("evaluation success rate" if metric == "success_rate" else "evaluation return")
        ax.set_title(env)
        ax.legend(fontsize=8)
        prefix = "success" if metric == "success_rate" else "curves"
        name = f"{prefix}_{env.replace(':', '_').replace('/', '_')}.png"
        _save(fig, out / name)
        plt.close(fig)
        names.append(name)
    return names


def plot_aggregates(agg: dict, out: Path) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    algos = sorted(agg)
    fig, axes = plt.subplots(1, len(AGGREGATES), figsize=(3 * len(AGGREGATES), 0.5 + 0.5 * len(algos)))
    for ax, m in zip(np.atleast_1d(axes), AGGREGATES):
        for j, a in enumerate(algos):
            p, lo, hi = agg[a][m]
            if lo is not None:  # (none over one run per env)
                ax.barh(j, hi - lo, left=lo, height=0.6, color=f"C{j}", alpha=0.6)
            ax.vlines(p, j - 0.3, j + 0.3, color="k")
        ax.set_yticks(range(len(algos)), algos if m == AGGREGATES[0] else [""] * len(algos))
        ax.set_title(m)
        ax.set_xlabel("normalized score")
    _save(fig, out / "aggregates.png")
    plt.close(fig)
    return "aggregates.png"


def plot_profiles(mats: dict, out: Path, reps: int, seed: int) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rly, _ = _rliable()
    hi = max(1.05, max(float(m.max()) for m in mats.values()))
    taus = np.linspace(min(0.0, min(float(m.min()) for m in mats.values())), hi, 101)
    np.random.seed(seed)
    profiles, cis = rly.create_performance_profile(mats, taus, reps=reps)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for j, a in enumerate(sorted(mats)):
        ax.plot(taus, profiles[a], color=f"C{j}", label=a)
        ax.fill_between(taus, cis[a][0], cis[a][1], color=f"C{j}", alpha=0.2)
    ax.set_xlabel("normalized score tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.legend(fontsize=8)
    _save(fig, out / "profiles.png")
    plt.close(fig)
    return "profiles.png"


# ----------------------------------------------------------------------------- report
def _fmt(v: list, digits: int = 1) -> str:
    if v[1] is None:  # one seed (per env)
        return f"{v[0]:.{digits}f} (1 seed)"
    return f"{v[0]:.{digits}f} [{v[1]:.{digits}f}, {v[2]:.{digits}f}]"


def _published_text(published: list[dict]) -> str:
    return "; ".join(f"{p['value']:g} ({p['source']}, {p['steps'] // 1000}k)"
                     for p in published) or "-"


def _curves_json(curve_data: dict) -> dict:
    return {f"{e}|{a}": {"steps": g.tolist(), "iqm": p.tolist(),
                         "low": None if lo is None else lo.tolist(),
                         "high": None if hi is None else hi.tolist()}
            for (e, a), (g, p, lo, hi) in curve_data.items()}


MIN_REPS = 10
MAX_REPS = 100_000
"""rliable's intervals settle by a few thousand resamples; beyond this the bootstrap's arrays
(seeds x tasks x reps) stop fitting in memory for no better interval."""


def check_not_users(out_dir: Path) -> None:
    """A report replaces the report files of an earlier report in ``out_dir``, but not files
    of those names that something else wrote (no contrl report.json beside them)."""
    mine = out_dir / "report.json"
    try:
        earlier = json.loads(mine.read_text()) if mine.is_file() else None
    except (OSError, ValueError):
        earlier = None
    if isinstance(earlier, dict) and {"runs", "per_task", "curves"} <= earlier.keys():
        return
    names = ("report.md", "report.json", "aggregates.png", "profiles.png")
    taken = [p for p in (*map(out_dir.joinpath, names), *sorted(out_dir.glob("curves_*.png")),
                         *sorted(out_dir.glob("success_*.png")))
             if p.exists()] if out_dir.is_dir() else []
    if taken:
        raise ContrlError(f"{taken[0]} exists and is not from a contrl report: give --out "
                          "another folder (a report writes report.md, report.json and PNGs)")


def report(dirs: list[str], out: str | None = None, reps: int = 2000, seed: int = 0,
           pick: str = "final", figures: bool = True, refs_path: Path = REFERENCES,
           step: int | None = None) -> dict:
    """Write report.md, report.json and figures for the runs below ``dirs`` into ``out``
    (default: the first directory). ``pick``: aggregate the final or the best evaluations.
    ``step``: use each run's evaluations up to this env step only (compare runs of different
    lengths at equal steps)."""
    if reps < MIN_REPS:  # one resample gives an interval of width 0, which reads as certainty
        raise ContrlError(f"reps must be at least {MIN_REPS} (bootstrap resamples for the "
                          f"95% intervals; the default is 2000), got {reps}")
    if reps > MAX_REPS:
        raise ContrlError(f"reps must be at most {MAX_REPS} (the default is 2000), got {reps}")
    if pick not in ("final", "best"):
        raise ContrlError(f"pick must be final or best, got '{pick}'")
    if step is not None and step <= 0:
        raise ContrlError(f"--up-to must be a positive step, got {step}")
    out_dir = Path(out or dirs[0])
    if out_dir.exists() and not out_dir.is_dir():
        raise ContrlError(f"--out {out_dir} is a file; the report needs a folder")
    check_not_users(out_dir)
    unevaluated: list[str] = []
    runs = find_runs(dirs, step, unevaluated)
    diverged = [r for r in runs if not np.isfinite(r.final)]
    runs = [r for r in runs if np.isfinite(r.final)]
    if not runs:
        raise ContrlError(f"every run's last evaluation is not a finite number (diverged): "
                          f"{', '.join(str(r.path) for r in diverged)}")
    refs = load_references(refs_path)
    groups = group(runs)
    table = per_task_table(groups, reps, seed, refs)
    mats, envs, notes = score_matrices(groups, refs, pick)
    if unevaluated:
        notes.append(f"{len(unevaluated)} run(s) left out: no evaluation"
                     + (f" at or before step {step}" if step is not None else " yet")
                     + f": {', '.join(unevaluated)}")
    if diverged:
        notes.append(f"{len(diverged)} run(s) left out: their last evaluation is not a finite "
                     f"number (diverged): {', '.join(str(r.path) for r in diverged)}")
    gaps = [str(r.path) for r in runs if not np.all(np.isfinite(r.returns))]
    if gaps:
        notes.append(f"{len(gaps)} run(s) have non-finite evaluations before their last (not "
                     f"counted as their best; their curves have gaps): {', '.join(gaps)}")

    def stopped(r):  # ended early by reaching its stop_at_return, as asked
        target = r.config.get("stop_at_return")
        return target is not None and r.final >= target and (step is None or r.last_step <= step)
    short = [r for r in runs if r.last_step < min(int(r.config.get("steps", 0)), step or np.inf)]
    unfinished = [str(r.path) for r in short if not stopped(r)]
    if unfinished:
        notes.append(f"{len(unfinished)} run(s) have not reached their steps yet; their "
                     f"\"final\" is their latest evaluation: {', '.join(unfinished)}")
    early = [str(r.path) for r in short if stopped(r)]
    if early:
        notes.append(f"{len(early)} run(s) stopped early on reaching their stop_at_return: "
                     f"{', '.join(early)}")
    single = sorted(f"{e} {a}" for (e, a), rs in groups.items() if len(rs) == 1)
    if single:
        notes.append(f"one seed: {', '.join(single)}; no interval (an interval needs seeds)")
    few = sorted(f"{e} {a} ({len(rs)})" for (e, a), rs in groups.items()
                 if 1 < len(rs) < FEW_SEEDS)
    if few:
        notes.append(f"fewer than {FEW_SEEDS} seeds: {', '.join(few)}; a bootstrap interval "
                     "over so few seeds covers the mean less often than 95% (over 3 it cannot "
                     "reach past the seeds' own range): read it as their spread")
    agg = aggregates(mats, reps, seed) if mats else {}
    prob = improvement(mats, reps, seed) if len(mats) > 1 else {}
    curve_data = curves(groups, reps, seed)
    success_curves = curves(groups, reps, seed, "success_rate")
    out_dir.mkdir(parents=True, exist_ok=True)  # made once the runs have been read
    figs = []
    if figures:
        figs += plot_curves(curve_data, refs, out_dir, groups)
        figs += plot_curves(success_curves, refs, out_dir, groups, "success_rate")
        if mats:
            figs += [plot_aggregates(agg, out_dir), plot_profiles(mats, out_dir, reps, seed)]
    result = {"runs": len(runs), "dirs": list(dirs), "reps": reps, "seed": seed, "pick": pick,
              "up_to_step": step,
              "per_task": table, "aggregate_envs": envs, "aggregates": agg,
              "probability_of_improvement": prob, "notes": notes, "figures": figs,
              "curves": _curves_json(curve_data), "success_curves": _curves_json(success_curves)}
    atomic_write_json(out_dir / "report.json", _strict_json(result))
    atomic_write_bytes(out_dir / "report.md", markdown(result, refs).encode())
    return result


def _strict_json(value):
    """``value`` with NaN and infinities as null (a diverged run's evaluations are NaN; bare NaN
    is not JSON, and strict readers such as jq and JavaScript refuse the whole file)."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def markdown(result: dict, refs: dict) -> str:
    lines = [f"# Report: {result['runs']} runs", "",
             f"Runs from: {', '.join(result['dirs'])}. Intervals: 95% (stratified) bootstrap, "
             f"{result['reps']} resamples (rliable), seed {result['seed']}."
             + (f" Evaluations up to env step {result['up_to_step']} only."
                if result.get("up_to_step") else ""), "",
             "## Per env and algorithm", "",
             "| env | algo | seeds | steps | final return | best return | normalized final | "
             "wall time | published |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["per_task"]:
        pub = _published_text(r["published"])
        norm = "-" if r["normalized_final"] is None else f"{r['normalized_final']:.3f}"
        wall = "-" if r.get("wall_time") is None else f"{r['wall_time']:.0f} s"
        lines.append(f"| {r['env']} | {r['algo']} | {len(r['seeds'])} | {r['steps']} | "
                     f"{_fmt(r['final'])} | {_fmt(r['best'])} | {norm} | {wall} | {pub} |")
    lines += ["", "Final: the last evaluation of each run; best: its best evaluation (an "
              "optimistic figure, as Tianshou's max-within-1M). Each is averaged over seeds. "
              "Wall time: the median over seeds of a run's clock at its last evaluation "
              "(evaluations included; it depends on the machine and on what else ran).", ""]
    rated = [r for r in result["per_task"] if "success" in r]
    if rated:
        lines += ["## Success rates", "", "| env | algo | dataset | seeds | steps | final success "
                  "rate | best success rate | per seed (final) | published |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rated:
            s = r["success"]
            lines.append(f"| {r['env']} | {r['algo']} | {', '.join(s['datasets'])} | "
                         f"{len(r['seeds'])} | {r['steps']} | {_fmt(s['final'], 3)} | "
                         f"{_fmt(s['best'], 3)} | {', '.join(f'{v:g}' for v in s['final_per_seed'])} | "
                         f"{_published_text(s['published'])} |")
        lines += ["", "Success rate: the share of evaluation episodes that reached the goal; "
                  "mean over seeds with its 95% bootstrap interval over seeds.", ""]
    if result["aggregates"]:
        lines += [f"## Across envs ({', '.join(result['aggregate_envs'])}; {result['pick']} "
                  "evaluations, normalized)", "",
                  "| algo | " + " | ".join(AGGREGATES) + " |",
                  "|---|" + "---|" * len(AGGREGATES)]
        for a, vals in sorted(result["aggregates"].items()):
            lines.append(f"| {a} | " + " | ".join(_fmt(vals[m], 3) for m in AGGREGATES) + " |")
        lines += ["", "Normalization: (return - random) / (expert - random) with:", ""]
        for env in result["aggregate_envs"]:
            n = refs["normalize"][env]
            lines.append(f"- {env}: random {n['random']:g} ({n['random_source']}), expert "
                         f"{n['expert']:g} ({n['expert_source']})")
        lines.append("")
    if result["probability_of_improvement"]:
        lines += ["## Probability of improvement P(X > Y)", "", "| X | Y | P(X > Y) |",
                  "|---|---|---|"]
        for k, v in sorted(result["probability_of_improvement"].items()):
            x, y = k.split(" > ")
            lines.append(f"| {x} | {y} | {_fmt(v, 3)} |")
        lines.append("")
    if result["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    if result["figures"]:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in result["figures"]] + [""]
    return "\n".join(lines)
