"""The goal reacher for AntMaze data: SAC on AntGoal-v3 (D4RL's ant; or --env AntGoal-v2,
AntGoal-v1 with Gymnasium's) (trained,
resumed, or skipped when done), its reach-rate curve, and the reacher driving the ant of a
maze through the waypoint planner (evaluation episodes with the maze picture).

    python benchmarks/antmaze_reacher.py --steps 100000 --out benchmarks/results/antmaze \\
        [--run-dir runs/antmaze/sac-AntGoal-v3-s0] [--maze AntMaze_UMaze_D4RL-v5 --maze-episodes 10]
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from contrl.envs.antgoal import ENV_ID, ENV_IDS
from contrl.envs.make import ant_model

from common import (atomic_write_text, column, keep_evidence, log, pyplot, read_eval,
                    report_header, train_or_resume)


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def curve(run: Path, out: Path, env: str) -> str:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps, rate = column(run, "eval_success_rate")
    ax1.plot(steps, rate, "o-", label="reach rate (deterministic eval, 50 episodes)")
    s, ok = column(run, "episode_success")
    ax1.plot(s, ok, alpha=0.3, label="training episodes reaching a goal")
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_xlabel("environment steps")
    ax1.legend(fontsize=7)
    ax1.grid(alpha=0.3)
    s, ret = column(run, "eval_return")
    ax2.plot(s, ret, "o-", label="eval return")
    s, ret = column(run, "episode_return")
    ax2.plot(s, ret, alpha=0.3, label="training episode return")
    ax2.set_xlabel("environment steps")
    ax2.legend(fontsize=7)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"SAC on {env}")
    fig.tight_layout()
    fig.savefig(out / "reacher_curve.png", dpi=110)
    plt.close(fig)
    return "reacher_curve.png"


def drive(run: Path, maze: str, episodes: int, out: Path) -> dict:
    """The reacher's best policy driving ``maze``'s ant towards the planner's waypoints."""
    from contrl.envs import make_env
    from contrl.envs.antgoal import MazeDriver
    from contrl.envs.maze import MazeGeometry
    from contrl.envs.maze_planner import WaypointPlanner
    from contrl.evaluate import evaluate
    from contrl.seeding import stream_seed
    from contrl.maze_picture import draw_trace
    from contrl.run import atomic_write_bytes
    from contrl.rundir import load_agent

    reacher = load_agent(run, "best")[0]
    driver = MazeDriver(reacher, WaypointPlanner(MazeGeometry.of_env(make_env(maze))))
    result = evaluate(driver, maze, episodes, stream_seed(0, "eval_envs", "offset"), trace=True)
    trace = result.pop("trace")
    name = f"drive_{maze}.png"
    atomic_write_bytes(out / name, draw_trace(trace, f"{maze}: reacher + planner").png)
    result["picture"] = name
    return result


def collect_speed(run: Path, name: str, steps: int) -> dict:
    """Time ``contrl make-dataset``'s collection of ``steps`` transitions of ``name`` with the
    reacher (8 episodes in lockstep), in a temporary Minari directory."""
    import tempfile
    import time

    from contrl.rundir import make_maze_dataset_from_run

    previous = os.environ.get("MINARI_DATASETS_PATH")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MINARI_DATASETS_PATH"] = tmp
        t0 = time.perf_counter()
        out = make_maze_dataset_from_run(name, run, "best", steps=steps, num_envs=8)
        seconds = time.perf_counter() - t0
    if previous is None:
        os.environ.pop("MINARI_DATASETS_PATH")
    else:
        os.environ["MINARI_DATASETS_PATH"] = previous
    return {**out, "seconds": seconds, "steps_per_sec": steps / seconds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", default=None, help="default runs/antmaze/sac-<env>-s<seed>")
    p.add_argument("--env", default=ENV_ID, choices=ENV_IDS)
    p.add_argument("--maze", default=None, help="default: the U maze with the reacher's ant")
    p.add_argument("--maze-episodes", type=int, default=10)
    p.add_argument("--collect", default=None, help="dataset whose collection is timed with "
                   "the reacher (default: medium-play with the reacher's ant)")
    p.add_argument("--collect-steps", type=int, default=8000)
    p.add_argument("--out", default="benchmarks/results/antmaze")
    a = p.parse_args()
    d4rl = ant_model(a.env) == "d4rl"
    a.maze = a.maze or ("AntMaze_UMaze_D4RL-v5" if d4rl else "AntMaze_UMaze-v5")
    a.collect = a.collect or f"antmaze-medium-play-v{int(d4rl)}"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Path(a.run_dir or f"runs/antmaze/sac-{a.env}-s{a.seed}")
    run.parent.mkdir(parents=True, exist_ok=True)
    before = load()
    train_or_resume("sac", a.env, {"seed": a.seed, "tensorboard": False}, run, a.steps)
    after = load()
    keep_evidence(run, out)
    picture = curve(run, out, a.env)
    log(f"driving {a.maze} with the reacher")
    maze = drive(run, a.maze, a.maze_episodes, out)
    log(f"timing the collection of {a.collect_steps} steps of {a.collect}")
    speed = collect_speed(run, a.collect, a.collect_steps)
    rows = [(s, r) for s, r in zip(*column(run, "eval_success_rate"))]
    _, returns = column(run, "eval_return")
    last = read_eval(run)
    lines = report_header(f"{a.env} goal reacher: SAC", "antmaze_reacher.py",
                          minutes=True)
    lines += [f"This command: {before} when it started, {after} when its training part "
              "ended (skipped when the run had reached --steps; a shared 2-core machine: wall "
              "times are those of a loaded machine).", "",
              f"![curve]({picture})", "",
              "| env steps | reach rate (50 eval episodes) | eval return |", "|---|---|---|"]
    lines += [f"| {int(s)} | {r:.2f} | {ret:.1f} |" for (s, r), ret in zip(rows, returns)]
    lines += ["", f"Last evaluation: reach rate {last.get('success_rate')} "
              f"(95% interval {last.get('success_interval')}), mean steps to the first goal "
              f"{last.get('mean_steps_to_goal')}.", "",
              f"Driving {a.maze} (best checkpoint + waypoint planner, {a.maze_episodes} "
              f"episodes): success rate {maze.get('success_rate')}, interval "
              f"{maze.get('success_interval')}, mean steps to the goal "
              f"{maze.get('mean_steps_to_goal')}.", "", f"![maze]({maze['picture']})", "",
              f"Collecting {a.collect_steps} steps of {a.collect} with this reacher "
              f"(`contrl make-dataset`, 8 episodes in lockstep, noise 0.2): "
              f"{speed['seconds']:.0f} s, {speed['steps_per_sec']:.0f} steps/s (so 1M steps: "
              f"about {1e6 / speed['steps_per_sec'] / 3600:.1f} h here), "
              f"{speed['goals_reached']} goals reached.", ""]
    atomic_write_text(out / "reacher.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
