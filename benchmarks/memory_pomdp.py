"""Memory on partially observed tasks: recurrent agents against feed-forward SAC (plain and
with a frame stack) and against SAC on the full observation. Resumable grid of settings x envs
x seeds, then a table and one learning-curve plot per env.

Each setting is an algorithm plus overrides (``SETTINGS``); each run lives in
``<runs-dir>/<setting>-<env>-s<seed>``: finished runs are skipped, unfinished ones resumed.
``full`` settings train on the task's fully observed base env (e.g. Pendulum-v1 for
Pendulum-V-v1): the oracle.

    python benchmarks/memory_pomdp.py --settings rsac,rtd3,sac,sac_stack4 \\
        --envs Pendulum-V-v1,Pendulum-P-v1 --seeds 0,1,2 --steps 30000 \\
        --out benchmarks/results/memory/pendulum
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import (column, comma_list, env_folder, finished_step, int_list, keep_evidence,
                    pyplot, report_header, save_figure, train_or_resume, write_report)

# label -> (algo, overrides, runs on the fully observed base env)
SETTINGS = {
    "rsac": ("rsac", {}, False),
    "rtd3": ("rtd3", {}, False),
    "rdpg": ("rdpg", {}, False),
    "rsac_data": ("rsac", {"offline_ratio": 0.5}, False),  # half of every batch: --dataset
    "rsac_burn16": ("rsac", {"burn_in": 16}, False),
    "rtd3_burn16": ("rtd3", {"burn_in": 16}, False),
    "rsac_g98": ("rsac", {"burn_in": 16, "gamma": 0.98}, False),
    "rtd3_g98": ("rtd3", {"burn_in": 16, "gamma": 0.98}, False),
    "rsac_g98_whole": ("rsac", {"gamma": 0.98}, False),
    "rtd3_g98_whole": ("rtd3", {"gamma": 0.98}, False),
    "rsac_rew": ("rsac", {"prev_reward": True}, False),  # previous reward as an input too
    "rtd3_rew": ("rtd3", {"prev_reward": True}, False),
    "rsac_rew_g98": ("rsac", {"prev_reward": True, "gamma": 0.98}, False),
    # Locomotion at a quarter of a gradient step per env step for every setting alike (what
    # lets 300k-step runs of all four fit this 2-core machine): rsac with a GRU of 64, 16
    # windows of 32 steps (8 of them burn-in) and the previous action, as pomdp-baselines.
    "rsac_loco": ("rsac", {"utd_ratio": 0.25, "rnn_hidden": 64, "seq_len": 32, "burn_in": 8,
                           "batch_size": 16, "prev_action": True}, False),
    "sac_u4": ("sac", {"utd_ratio": 0.25}, False),
    "sac_stack4_u4": ("sac", {"utd_ratio": 0.25, "frame_stack": 4}, False),
    "sac_full_u4": ("sac", {"utd_ratio": 0.25}, True),
    "sac_full_g90": ("sac", {"gamma": 0.9}, True),
    "sac": ("sac", {}, False),
    "sac_stack4": ("sac", {"frame_stack": 4}, False),
    "sac_rew": ("sac", {"prev_reward": True}, False),
    "sac_stack4_rew": ("sac", {"frame_stack": 4, "prev_reward": True}, False),
    "sac_full": ("sac", {}, True),
}
# Published figures (../shared/reference/ANCHORS.md): env -> {label: value}.
REFERENCES = {
    "Pendulum-V-v1": {"pomdp-baselines TD3-LSTM, 31k steps": -183.5},
    "HalfCheetah-P-v5": {"pomdp-baselines Markovian SAC, PyBullet, 1.5M": 870.0,
                         "oracle SAC, PyBullet, 1.5M": 2994.0},
    "HalfCheetah-V-v5": {"pomdp-baselines Markovian SAC, PyBullet, 1.5M": 518.0},
    "Hopper-V-v5": {"pomdp-baselines Markovian SAC, PyBullet, 1.5M": 228.0,
                    "oracle SAC, PyBullet, 1.5M": 2434.0},
}


def base_env(env: str) -> str:
    from contrl.envs.pomdp import FIRST_TARGET, VARIANTS
    if env in VARIANTS:
        return VARIANTS[env].base
    return FIRST_TARGET[env][0] if env in FIRST_TARGET else env


def run_dir_for(root: Path, setting: str, env: str, seed: int) -> Path:
    return root / f"{setting}-{env_folder(env)}-s{seed}"


def run_grid(a) -> None:
    for seed in a.seeds:  # every setting's first seed before any second seed
        for env in a.envs:
            for label in a.settings:
                algo, over, full = SETTINGS[label]
                if "offline_ratio" in over:
                    over = {**over, "dataset": a.dataset}
                train_or_resume(algo, base_env(env) if full else env,
                                {"seed": seed, "eval_every": a.eval_every, **over},
                                run_dir_for(a.runs_dir, label, env, seed), a.steps, a.progress)


def final_eval(run: Path, episodes: int) -> float:
    """Mean return of the run's latest policy over ``episodes`` deterministic episodes (the
    evaluation seeds every contrl evaluation uses), cached in <run>/final_eval.json."""
    import json

    from common import atomic_write_json

    cache = run / "final_eval.json"
    if cache.exists():
        saved = json.loads(cache.read_text())
        if saved["episodes"] == episodes and saved["step"] == finished_step(run):
            return saved["mean_return"]
    from contrl.evaluate import evaluate
    from contrl.rundir import load_agent
    agent, run_cfg, _, meta = load_agent(run, "latest")
    res = evaluate(agent, run_cfg.env, episodes, run_cfg.stream_seed("eval_envs"),
                   **run_cfg.env_kwargs)
    atomic_write_json(cache, {"episodes": episodes, "step": meta["step"],
                              "mean_return": res["mean_return"], "returns": res["returns"]})
    return res["mean_return"]


def report(a) -> None:
    plt = pyplot()
    a.out.mkdir(parents=True, exist_ok=True)
    lines = report_header("Memory-based control on partially observed tasks",
                          "memory_pomdp.py") + [
        "Deterministic evaluation (episodes per point: the preset's eval_episodes). final = "
        "last evaluation, best = best evaluation of the run; mean +/- std over seeds. "
        "`sac_full` is SAC on the fully observed task (the oracle). "
        f"last policy = the run's final policy evaluated on {a.final_episodes} episodes.", "",
        "| setting | env | seeds | steps | final (mean +/- std) | best (mean +/- std) | "
        f"last policy, {a.final_episodes} episodes (mean +/- std; per seed) | reference |",
        "|---|---|---|---|---|---|---|---|"]
    table = []
    for env in a.envs:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for label in a.settings:
            curves, lasts = [], []
            for seed in a.seeds:
                run = run_dir_for(a.runs_dir, label, env, seed)
                if not (run / "progress.csv").exists():
                    continue
                x, y = column(run, "eval_return")
                if len(y):
                    keep_evidence(run, a.out)
                    curves.append((x, y))
                    lasts.append(final_eval(run, a.final_episodes))
            if not curves:
                continue
            n = min(len(c[0]) for c in curves)
            xs, ys = curves[0][0][:n], np.stack([c[1][:n] for c in curves])
            line, = ax.plot(xs, ys.mean(0), lw=1.8, label=f"{label} ({len(curves)} seed(s))")
            if len(curves) > 1:
                ax.fill_between(xs, ys.min(0), ys.max(0), alpha=0.2, color=line.get_color())
            finals = [c[1][-1] for c in curves]
            bests = [c[1].max() for c in curves]
            steps = min(int(c[0][-1]) for c in curves)
            refs = REFERENCES.get(env, {})
            ref = "; ".join(f"{k}: {v:g}" for k, v in refs.items()) or "-"
            lines.append(f"| {label} | {env} | {len(curves)} | {steps:,} | {np.mean(finals):.1f} "
                         f"+/- {np.std(finals):.1f} | {np.mean(bests):.1f} +/- "
                         f"{np.std(bests):.1f} | {np.mean(lasts):.1f} +/- {np.std(lasts):.1f}; "
                         f"{', '.join(f'{v:.1f}' for v in lasts)} | {ref} |")
            table.append({"setting": label, "env": env, "seeds": len(curves), "steps": steps,
                          "final_mean": float(np.mean(finals)), "final_std": float(np.std(finals)),
                          "best_mean": float(np.mean(bests)), "finals": [float(v) for v in finals],
                          "last_policy_episodes": a.final_episodes,
                          "last_policy_mean": float(np.mean(lasts)),
                          "last_policy_returns": [float(v) for v in lasts]})
        for name, value in REFERENCES.get(env, {}).items():
            ax.axhline(value, ls="--", lw=0.8, color="grey")
            ax.text(0, value, f" {name}", fontsize=7, va="bottom", color="grey")
        save_figure(fig, ax, f"{env}: deterministic evaluation return",
                    a.out / f"{env_folder(env)}.png")
    write_report(a.out, lines, table)


def main():
    p = argparse.ArgumentParser(description="Memory benchmark on partially observed tasks.")
    p.add_argument("--settings", type=comma_list, default=["rsac", "rtd3", "sac", "sac_stack4"])
    p.add_argument("--envs", type=comma_list, default=["Pendulum-V-v1", "Pendulum-P-v1"])
    p.add_argument("--seeds", type=int_list, default=[0])
    p.add_argument("--steps", type=int, default=None, help="env steps per run (default: preset)")
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--runs-dir", type=Path, default=Path("benchmarks/runs/memory"))
    p.add_argument("--out", type=Path, default=None,
                   help="where the report goes (default: <runs-dir>/report, outside git)")
    p.add_argument("--final-episodes", type=int, default=50,
                   help="episodes of the final evaluation of each run's last policy")
    p.add_argument("--dataset", default="", help="dataset of the *_data settings (Minari id, "
                   "directory or HDF5 file; benchmarks/pendulum_p_dataset.py makes one)")
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    a = p.parse_args()
    unknown = [s for s in a.settings if s not in SETTINGS]
    if unknown:
        p.error(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(SETTINGS)}")
    if not a.dataset and any("offline_ratio" in SETTINGS[s][1] for s in a.settings):
        p.error("the *_data settings need --dataset")
    a.out = a.out or a.runs_dir / "report"
    if not a.report_only:
        run_grid(a)
    report(a)


if __name__ == "__main__":
    main()
