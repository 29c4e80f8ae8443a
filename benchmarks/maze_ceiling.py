"""How often the data's own driver reaches the goal of a fixed AntMaze, and why agents fail.

The driver is the AntGoal reacher steered by the waypoint planner, as ``contrl make-dataset``
drives it, without noise and with the datasets' N(0, noise^2) action noise. Its success rate
on the evaluation task is a rough ceiling for an offline agent that learns from its
trajectories. Trained runs (``--runs``) are evaluated the same way (their best checkpoint, or
--checkpoint). Every row also says how often the ant turned over (it cannot get up again).

    python benchmarks/maze_ceiling.py --reacher benchmarks/results/antmaze/reacher_v2/run \\
        --mazes AntMaze_UMaze_Fixed-v5 AntMaze_Medium_Fixed-v5 --episodes 100 \\
        [--runs RUN ...] --out benchmarks/results/antmaze/ceiling
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common import atomic_write_text, log, report_header


def evaluate_picture(policy, maze: str, episodes: int, seed: int, out: Path, name: str,
                     title: str, **env_kwargs) -> dict:
    from contrl.evaluate import evaluate
    from contrl.seeding import stream_seed
    from contrl.maze_picture import draw_trace
    from contrl.run import atomic_write_bytes

    result = evaluate(policy, maze, episodes, stream_seed(seed, "eval_envs", "offset"), trace=True,
                      **env_kwargs)
    atomic_write_bytes(out / f"{name}.png", draw_trace(result.pop("trace"), title).png)
    return result


def row(label: str, maze: str, r: dict, picture: str) -> str:
    low, high = r["success_interval"]
    steps = r["mean_steps_to_goal"]
    failures = r["turned_over_failures"]
    return (f"| {label} | {maze} | {r['success_rate']:.2f} [{low:.2f}, {high:.2f}] | "
            f"{'-' if steps is None else f'{steps:.0f}'} | {r['turned_over_rate']:.2f} | "
            f"{'-' if failures is None else f'{failures:.2f}'} | [{picture}]({picture}) |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reacher", type=Path, required=True, help="AntGoal-v2 run directory")
    p.add_argument("--mazes", nargs="*", default=["AntMaze_UMaze_Fixed-v5", "AntMaze_Medium_Fixed-v5"],
                   help="mazes to drive the data's driver on (none: only --runs)")
    p.add_argument("--noise", type=float, default=0.2, help="the datasets' action noise")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", nargs="*", default=[], type=Path, help="trained maze runs")
    p.add_argument("--checkpoint", default="best", choices=("best", "latest"))
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()

    from contrl.envs import make_env
    from contrl.envs.antgoal import MazeDriver
    from contrl.envs.maze import MazeGeometry
    from contrl.envs.maze_planner import WaypointPlanner
    from contrl.policy import NoisyPolicy
    from contrl.rundir import load_agent

    a.out.mkdir(parents=True, exist_ok=True)
    reacher = load_agent(a.reacher, "best")[0]
    rows = []
    for maze in a.mazes:
        driver = MazeDriver(reacher, WaypointPlanner(MazeGeometry.of_env(make_env(maze))))
        for noise in (0.0, a.noise):
            policy = driver if noise == 0 else NoisyPolicy(driver, noise, a.seed)
            name = f"driver_{maze}_noise{noise:g}"
            log(f"driver   {maze} noise {noise:g}")
            r = evaluate_picture(policy, maze, a.episodes, a.seed, a.out, name,
                                 f"{maze}: reacher + planner, noise {noise:g}")
            rows.append(row(f"driver, noise {noise:g}", maze, r, f"{name}.png"))
    for run in a.runs:
        agent, cfg, _, meta = load_agent(run, a.checkpoint)
        used = meta["checkpoint"]  # best falls back to latest in a run that never evaluated
        name = f"{run.name}_{used}"
        log(f"run      {run.name} ({used}, step {meta.get('step')})")
        r = evaluate_picture(agent, cfg.env, a.episodes, cfg.seed, a.out, name,
                             f"{run.name} {used} (step {meta.get('step')})",
                             **cfg.env_kwargs)
        rows.append(row(f"`{run.name}` {used} (step {meta.get('step')})", cfg.env, r,
                        f"{name}.png"))
    lines = report_header("AntMaze: the data's driver and trained agents on the evaluation task",
                          "maze_ceiling.py", minutes=True)
    text = "\n".join(lines) + ("\n| policy | maze | success rate (95% interval) | mean steps to the goal | "
             "turned over (share of episodes) | turned over (share of failures) | picture |\n"
             "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    atomic_write_text(a.out / "ceiling.md", text)
    print(text)


if __name__ == "__main__":
    main()
