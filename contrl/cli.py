"""The ``contrl`` command line: parse, call, print. Options are generated from the config
dataclasses, so every hyperparameter is a documented flag."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path

from contrl import config as C
from contrl.errors import ContrlError

MAX_VIDEO_SIDE = 4096
"""The largest video side in pixels (8K frames are 4320 high; one of 4096x4096 is 50 MB)."""
MAX_VIDEO_FPS = 1000
"""The highest frame rate a video may ask for (players show 24-240; above that, a clip of an
episode lasts no time)."""


def _add_config_args(parser: argparse.ArgumentParser, cls: type, title: str, skip=()) -> None:
    group = parser.add_argument_group(title)
    docs = C.field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp, is_tuple, optional = C.base_type(C.field_types(cls)[f.name])
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{docs.get(f.name, '')} (default: {default})".replace("%", "%%")
        kwargs = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if tp is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        elif is_tuple:
            group.add_argument(flag, type=tp, nargs="+", metavar=tp.__name__.upper(), **kwargs)
        else:
            group.add_argument(flag, type=tp, metavar=tp.__name__.upper(), **kwargs)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gets a short usage line and the error, not the whole
    usage of a command with fifty flags (``--help`` has them)."""

    def error(self, message):
        self.exit(2, f"usage: {self.prog} ... (`{self.prog} --help` lists the options)\n"
                     f"{self.prog}: error: {message}\n")


def summary(cls) -> str:
    """The first paragraph of a class's docstring, on one line (what `list` and `--help` say
    of an algorithm's config)."""
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def build_parser() -> argparse.ArgumentParser:
    from contrl.loops.vmap_seeds import VMAPPABLE
    from contrl.registry import REGISTRY

    parser = _Parser(prog="contrl", description="Continuous-control RL on MuJoCo.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train an agent", description="Train an agent.")
    algos = train.add_subparsers(dest="algo", required=True, metavar="ALGO")
    for name, (cfg_cls, _, _) in REGISTRY.items():
        p = algos.add_parser(name, help=summary(cfg_cls),
                             description=f"Train {name}. Defaults < preset for the env < flags.")
        p.add_argument("env", nargs="?", help="environment id, e.g. HalfCheetah-v5")
        p.add_argument("--resume", metavar="RUN_DIR", nargs="+", help="continue the run in "
                       "RUN_DIR exactly (several: continue them together as with --seeds)")
        p.add_argument("--seeds", metavar="SEEDS", help="train these seeds (0-3, 0,5) in "
                       "this one process as one vmapped agent, each in its own run directory "
                       f"(with --run-dir, {{seed}} in it stands for the seed; "
                       f"{', '.join(VMAPPABLE)})")
        p.add_argument("--no-preset", action="store_true", help="ignore the per-env preset")
        p.add_argument("--run-dir", metavar="DIR", help="create the run in exactly this "
                       "(new or empty) directory instead of under --runs-dir")
        _add_config_args(p, C.RunConfig, "run options", skip=("env",))
        _add_config_args(p, cfg_cls, f"{name} hyperparameters")

    ev = sub.add_parser("eval", help="evaluate a saved run deterministically")
    ev.add_argument("run_dir")
    ev.add_argument("--episodes", type=int, default=None,
                    help="episodes (default: 100 on mazes, 10 otherwise)")
    ev.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    ev.add_argument("--seed", type=int, default=None,
                    help="play the evaluation episodes of a run with this seed (default: "
                         "episodes held out from the evaluations during training, which chose "
                         "the best checkpoint; the run's own seed repeats those)")

    sub.add_parser("list", help="algorithms, environments and presets")

    co = sub.add_parser("collect", help="roll out a saved policy (or a random one) into a "
                        "Minari dataset", description="Write a Minari dataset (under "
                        "MINARI_DATASETS_PATH, default ~/.minari/datasets).")
    co.add_argument("run_dir", nargs="?", help="run whose policy acts (omit with --random)")
    co.add_argument("--name", required=True, help="dataset id, e.g. hopper-expert-v0")
    co.add_argument("--steps", type=int, default=None, help="transitions to collect "
                    "(default 1000000)")
    co.add_argument("--noise", type=float, default=None,
                    help="std of Gaussian noise added to the policy's actions (default 0)")
    co.add_argument("--sample", action="store_true",
                    help="draw the actions from the policy's own distribution (SAC: its "
                         "tanh-Gaussian) instead of taking its mode, as D4RL's datasets did")
    co.add_argument("--random", action="store_true", help="uniform random actions")
    co.add_argument("--env", default=None, help="environment (needed with --random)")
    co.add_argument("--checkpoint", choices=("best", "latest"), default=None,
                    help="checkpoint whose policy acts (default best; latest with --from-buffer)")
    co.add_argument("--seed", type=int, default=None, help="(default 0)")
    co.add_argument("--num-envs", type=int, default=None, help="envs stepped in lockstep "
                    "(default 8)")
    co.add_argument("--ref-from", default=None, metavar="ID",
                    help="take the reference min/max scores from this dataset (e.g. a medium "
                         "dataset takes the expert dataset's) instead of evaluating them")
    co.add_argument("--from-buffer", action="store_true",
                    help="write the run's saved replay buffer (its --checkpoint, default "
                         "latest) instead of rolling out its policy: D4RL's medium-replay")
    co.add_argument("--concat", nargs="+", default=None, metavar="ID",
                    help="write these datasets one after the other (e.g. medium then expert) "
                         "as --name; no run needed")

    md = sub.add_parser("make-dataset", help="make a D4RL-style AntMaze dataset with a goal "
                        "reacher", description="Drive the ant of a maze with a policy trained on "
                        "AntGoal-v3 (or -v2) towards a waypoint planner's next door, with action "
                        "noise, and write a Minari dataset. Rerun the same command to continue an "
                        "interrupted collection.")
    md.add_argument("name", help="antmaze-umaze-v0, antmaze-umaze-diverse-v0, "
                    "antmaze-medium-play-v0, antmaze-medium-diverse-v0, antmaze-large-play-v0, "
                    "antmaze-large-diverse-v0 (single-task, as D4RL's) or the goal-conditioned "
                    "antmaze-umaze-multigoal-v0, antmaze-medium-play-multigoal-v0, "
                    "antmaze-medium-diverse-multigoal-v0; the same single-task names with -v1: "
                    "the mazes with D4RL's ant (AntMaze_*_D4RL-v5)")
    md.add_argument("--reacher", required=True, metavar="RUN",
                    help="run directory of a policy trained on AntGoal-v3 (the -v1 datasets, "
                    "D4RL's ant) or AntGoal-v2 (the -v0 datasets, Gymnasium's ant)")
    md.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    md.add_argument("--steps", type=int, default=1_000_000, help="transitions to collect")
    md.add_argument("--episode-steps", type=int, default=1000, help="steps per episode")
    md.add_argument("--noise", type=float, default=0.2,
                    help="std of Gaussian noise added to the reacher's actions")
    md.add_argument("--seed", type=int, default=0)
    md.add_argument("--num-envs", type=int, default=8, help="episodes stepped in lockstep")
    md.add_argument("--keep-turned-over", action="store_true",
                    help="keep collecting with an ant on its back (by default it starts afresh)")

    sub.add_parser("datasets", help="local datasets with their sizes and average returns")

    sw = sub.add_parser("sweep", help="a grid of runs: algorithms x envs x seeds x values",
                        description="Run every combination as an ordinary run directory under "
                        "one sweep directory. Rerun the same command to continue: finished runs "
                        "are skipped, interrupted ones resumed.")
    sw.add_argument("algos", help="comma-separated algorithms, e.g. sac,td3")
    sw.add_argument("envs", help="comma-separated environment ids, e.g. Hopper-v5,Walker2d-v5")
    sw.add_argument("--seeds", default="0", help="seeds: 0-4, 0,1,5 or 3 (default 0)")
    sw.add_argument("--steps", type=int, default=None, help="env steps of every run "
                    "(default: the preset's or the config's)")
    sw.add_argument("--set", action="append", default=[], metavar="FIELD=V[,V...]",
                    help="a config value for every run, or several (an axis of the grid); "
                         "tuple items joined by ':', e.g. --set hidden=64:64,256:256; repeatable")
    sw.add_argument("--dir", default=None, help="sweep directory (default: sweeps/sweep-<hash "
                    "of the grid>, so the same command finds the same sweep)")
    sw.add_argument("--jobs", type=int, default=None,
                    help="runs at once (default: cores / --cores-per-run)")
    sw.add_argument("--cores-per-run", type=int, default=1,
                    help="CPU cores each run is pinned to (default 1)")
    sw.add_argument("--no-preset", action="store_true", help="ignore the per-env presets")
    sw.add_argument("--ray", action="store_true", help="run the trials through Ray Tune on the "
                    "cluster at RAY_ADDRESS (or a local Ray instance); also when RAY_ADDRESS is set")
    sw.add_argument("--vmap-seeds", action=argparse.BooleanOptionalAction, default=None,
                    help="train each (algorithm, env, setting)'s seeds in one process as one "
                         "vmapped agent (sac, td3, ddpg; locally, not through Ray); default: "
                         "off, one process per seed, as fast or faster on a CPU "
                         "(benchmarks/results/vmap_seeds)")
    sw.add_argument("--dry-run", action="store_true", help="print the runs and their state only")
    sw.add_argument("--no-progress", action="store_true", help="no progress display")

    vd = sub.add_parser("video", help="render a saved policy to MP4 (and GIF) without a display")
    vd.add_argument("run_dir")
    vd.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    vd.add_argument("--episodes", type=int, default=1)
    vd.add_argument("--seed", type=int, default=None, help="first episode's seed (default: the "
                    "run's evaluation seed)")
    vd.add_argument("--out", default=None, help="video file (.mp4 or .gif; default "
                    "RUN_DIR/videos/<checkpoint>.mp4)")
    vd.add_argument("--gif", action="store_true", help="also write a small GIF beside the MP4")
    vd.add_argument("--overwrite", action="store_true", help="replace an existing --out file "
                    "(and its GIF with --gif); without it an existing file is refused")
    vd.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    vd.add_argument("--fps", type=int, default=30)
    vd.add_argument("--max-steps", type=int, default=None, help="cut each episode after this")

    rp = sub.add_parser("report", help="multi-seed report of runs or sweeps: intervals, IQM, "
                        "profiles, curves against published figures")
    rp.add_argument("dirs", nargs="+", help="sweep or run directories (searched below)")
    rp.add_argument("--out", default=None, help="where report.md, report.json and the PNGs go "
                    "(default: the first directory)")
    rp.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    rp.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    rp.add_argument("--pick", choices=("final", "best"), default="final",
                    help="aggregate each run's final or best evaluation")
    rp.add_argument("--no-figures", action="store_true", help="tables only")
    rp.add_argument("--up-to", type=int, default=None, metavar="STEP",
                    help="use each run's evaluations up to this env step only (runs of "
                    "different lengths compared at equal steps)")
    for leaf in [*algos.choices.values(), *(p for n, p in sub.choices.items() if n != "train")]:
        leaf.set_defaults(leaf_parser=leaf)  # an unknown flag is reported with its own usage
    return parser


def empty_value(argv: list[str]) -> str | None:
    """The first empty value on the command line, named; no contrl option or argument takes
    one (an unset shell variable, ``--runs-dir "$RUNS"``, would otherwise mean the current
    folder or the default)."""
    for i, token in enumerate(argv):
        if token.startswith("--") and token.endswith("=") and len(token) > 3:
            return f"{token[:-1]} was given an empty value"
        if token == "":
            before = argv[i - 1] if i else ""
            if before.startswith("-") and not before.startswith("--no-") and "=" not in before:
                return f"{before} was given an empty value"
            return f"an empty argument after '{before}'" if before else "an empty argument"
    return None


def unknown_flags(leaf: argparse.ArgumentParser, args, extra: list[str]) -> None:
    """Exit with the usage of the (sub)command that was given ``extra``, not the top level's."""
    hint = ("; the environment is given without a flag, e.g. `contrl train sac Hopper-v5`"
            if "--env" in extra and getattr(args, "command", None) == "train" else "")
    if not hint:
        import difflib
        known = [s for action in leaf._actions for s in action.option_strings]
        near = [m for e in extra if e.startswith("--")
                for m in difflib.get_close_matches(e.split("=")[0], known, n=1)]
        hint = f"; did you mean {', '.join(near)}?" if near else ""
    leaf.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def _is_env_id(text: str) -> bool:
    from contrl.envs.make import resolve_env_id
    try:
        resolve_env_id(text)
    except ContrlError:
        return False
    return True


def run_line(run: dict) -> str:
    """A trained run's folder, last step and last evaluation, on one line."""
    ev = run.get("eval")
    line = f"{run['run_dir']}  step {run['step']}"
    if ev:
        line += f"  eval return {ev['mean_return']:.1f} +/- {ev['std_return']:.1f}"
    return line


def cmd_train(args) -> int:
    from contrl.resolve import parse_seeds
    from contrl.train import train, train_seeds

    seeds = getattr(args, "seeds", None)
    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("command", "algo", "env", "resume", "no_preset", "run_dir", "seeds")}
    if args.run_dir and args.resume:
        raise ContrlError("--run-dir names a new run; --resume continues an existing one")
    if args.no_preset and args.resume:
        raise ContrlError("--no-preset applies when a run starts; a resumed run keeps the "
                          "settings it started with")
    stray = [r for r in args.resume or () if not os.path.exists(r) and _is_env_id(r)]
    if stray:  # `--resume RUN ENV`: --resume takes every word after it
        raise ContrlError(f"--resume takes run directories, and {stray[0]} is an environment "
                          "id: give it before --resume (or leave it out: a run knows its env)")
    if seeds is not None or (args.resume and len(args.resume) > 1):
        out = train_seeds(args.algo, args.env, overrides,
                          None if seeds is None else parse_seeds(seeds),
                          args.resume, not args.no_preset, args.run_dir)
    else:
        out = train(args.algo, args.env, overrides, resume=args.resume and args.resume[0],
                    use_preset=not args.no_preset, run_dir=args.run_dir)
    for run in out.get("runs", [out]):
        print(f"run: {run_line(run)}")
        if run.get("online"):  # an offline run's online phase, a run folder of its own
            print(f"online phase: {run_line(run['online'])}")
    signum = out.get("signal") or (out.get("online") or {}).get("signal")
    return 128 + signum if signum else 0  # interrupted (saved): 130 for SIGINT, 143 for SIGTERM


def cmd_eval(args) -> int:
    from contrl.evaluate import evaluate
    from contrl.maze_picture import draw_trace
    from contrl.run import atomic_write_bytes, atomic_write_json
    from contrl.rundir import check_eval_request, held_out_episodes, load_agent

    check_eval_request(args.episodes, args.seed)
    agent, run_cfg, _, meta = load_agent(args.run_dir, args.checkpoint)
    episodes, seed = held_out_episodes(run_cfg, args.episodes, args.seed)
    with progress_bar("evaluating (episodes)") as on_chunk:
        result = evaluate(agent, run_cfg.env, episodes, seed, trace=True, on_chunk=on_chunk,
                          **run_cfg.env_kwargs)
    used = meta["checkpoint"]  # best falls back to latest in a run that never evaluated
    result.update(checkpoint=used, step=meta.get("step"), seed=args.seed,
                  first_episode_seed=seed, seed_streams=run_cfg.seed_streams)
    trace = result.pop("trace", None)
    atomic_write_json(os.path.join(args.run_dir, f"eval-{used}.json"), result)
    if trace is not None:
        picture = draw_trace(trace, f"{run_cfg.env} {used} (step {meta.get('step')})")
        atomic_write_bytes(Path(args.run_dir) / f"eval-{used}.png", picture.png)
    print(json.dumps({k: v for k, v in result.items() if k != "returns"}))
    return 0


@contextlib.contextmanager
def progress_bar(what: str):
    """Yields an ``on_progress(done, total)`` callback that draws a progress bar (count, time
    left) on stderr for something long (an evaluation's episodes, a collection's
    transitions); on a terminal only, so stdout keeps only the result."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
    with Progress(what, BarColumn(), MofNCompleteColumn(), "eta", TimeRemainingColumn(),
                  transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def cmd_list(args) -> int:
    from contrl.envs import known_env_ids
    from contrl.registry import REGISTRY

    print("algorithms:")
    for name, (cfg_cls, _, kind) in REGISTRY.items():
        print(f"  {name:8s} {kind:10s} {summary(cfg_cls)}")
        presets = C.load_presets(name)
        if presets:
            print(f"           presets: {', '.join(presets)}")
    print("environments:")
    ids = known_env_ids()
    for i in range(0, len(ids), 4):
        print("  " + "  ".join(f"{x:28s}" for x in ids[i:i + 4]).rstrip())
    from contrl.envs.pomdp import describe_variants
    print("partially observed variants (and dmc:<domain>-<task>-P / -V: position-like / "
          "velocity observation keys):")
    for env_id, text in describe_variants():
        print(f"  {env_id:24s} {text}")
    return 0


def check_collect_flags(args) -> None:
    """Refuse flags that the chosen way of collecting would ignore."""
    given = {"a run directory": args.run_dir is not None, "--random": args.random,
             "--env": args.env is not None, "--steps": args.steps is not None,
             "--noise": args.noise is not None, "--sample": args.sample,
             "--checkpoint": args.checkpoint is not None, "--ref-from": args.ref_from is not None,
             "--from-buffer": args.from_buffer, "--seed": args.seed is not None,
             "--num-envs": args.num_envs is not None}
    if args.concat:
        mode, unused = "--concat joins datasets as they are", list(given)
    elif args.from_buffer:
        mode, unused = "--from-buffer writes the run's buffer as it is", [
            "--random", "--env", "--steps", "--noise", "--sample", "--seed", "--num-envs"]
    elif args.random:
        mode, unused = "--random acts uniformly at random", [
            "a run directory", "--noise", "--sample", "--checkpoint"]
    else:
        return
    ignored = [flag for flag in unused if given[flag]]
    if ignored:
        raise ContrlError(f"{mode}: {', '.join(ignored)} would be ignored")


def cmd_collect(args) -> int:
    from contrl.data.collect import check_noise, concat
    from contrl.rundir import collect_run, export_run_buffer

    if args.seed is not None:
        C.check_seed(args.seed)
    if args.noise is not None:
        check_noise(args.noise)
    check_collect_flags(args)
    if args.concat:
        print(json.dumps(concat(args.concat, args.name)))
        return 0
    if args.from_buffer:
        if args.run_dir is None:
            raise ContrlError("--from-buffer needs the run directory whose buffer to write")
        print(json.dumps(export_run_buffer(args.run_dir, args.name, args.checkpoint or "latest",
                                           args.ref_from)))
        return 0
    if args.run_dir is None and not args.random:
        raise ContrlError("give a run directory whose policy collects, or --random --env ENV")
    if args.num_envs is not None and args.num_envs <= 0:
        raise C.ConfigError(f"num_envs must be positive, got {args.num_envs}")
    given = {k: v for k, v in {"steps": args.steps, "noise": args.noise, "seed": args.seed,
                               "num_envs": args.num_envs}.items() if v is not None}
    with progress_bar("collecting (transitions)") as on_progress:  # the rest: collect_run's
        out = collect_run(None if args.random else args.run_dir, args.name, env_id=args.env,
                          which=args.checkpoint or "best", ref_from=args.ref_from,
                          sample=args.sample, on_progress=on_progress, **given)
    print(json.dumps(out))
    return 0


def cmd_make_dataset(args) -> int:
    from contrl.stopping import StopFlag
    from contrl.rundir import make_maze_dataset_from_run

    with StopFlag() as stop, progress_bar("collecting (episodes)") as on_progress:
        out = make_maze_dataset_from_run(
            args.name, args.reacher, args.checkpoint, stop=lambda: stop.raised, steps=args.steps,
            noise=args.noise, episode_steps=args.episode_steps, seed=args.seed,
            num_envs=args.num_envs, restart_turned_over=not args.keep_turned_over,
            on_progress=on_progress)
    print(json.dumps(out))
    if out.get("interrupted"):
        print(f"interrupted after {out['episodes_done']} episodes; run the same command again "
              "to continue", file=sys.stderr)
        return 128 + (stop.signum or 2)
    return 0


def cmd_datasets(args) -> int:
    from contrl.data.datasets import list_datasets, minari_root

    rows = list_datasets()
    print(f"datasets in {minari_root()}:" if rows else f"no datasets in {minari_root()}")
    for r in rows:
        if "problem" in r:
            print(f"  {r['id']:32s} unreadable: {r['problem']}")
            continue
        avg = "-" if r["average_return"] is None else f"{r['average_return']:.1f}"
        print(f"  {r['id']:32s} {r['env'] or '?':18s} {r['episodes'] or '?':>6} episodes "
              f"{r['steps'] or '?':>9} steps {r['size_mb']:8.1f} MB  average return {avg}"
              + (f"  (a copy: its metadata names {r['metadata_id']})" if "metadata_id" in r else ""))
    return 0


def cmd_sweep(args) -> int:
    from contrl.sweep import sweep

    if args.steps is not None and any(s.split("=")[0].strip() == "steps" for s in args.set):
        raise ContrlError("steps is given twice (--steps and --set steps=...): give one")
    sets = list(args.set) + ([f"steps={args.steps}"] if args.steps is not None else [])
    out = sweep(_split(args.algos), _split(args.envs), args.seeds, sets, args.dir, args.jobs,
                args.cores_per_run, not args.no_preset, args.ray, not args.no_progress,
                args.dry_run, args.vmap_seeds)
    if args.dry_run:
        print(f"sweep {out['dir']}: {out['runs']} runs, {len(out['done_before'])} finished")
        for name in out["todo"]:
            print(f"  to run: {name}")
        return 0
    print(f"sweep {out['dir']}: {len(out['done_before'])} already finished, "
          f"{len(out['finished'])} finished now, {len(out['failed'])} failed")
    for name, code in out["failed"].items():
        print(f"  failed (exit {code}): {name}; see {out['logs'][name]}")
    if out.get("signal"):
        print("interrupted; run the same command again to continue the sweep")
        return 128 + out["signal"]
    return 1 if out["failed"] else 0


def cmd_video(args) -> int:
    from contrl import video
    from contrl.run import saved_config
    from contrl.rundir import checkpoint_path, load_agent

    for name in ("episodes", "fps"):
        if getattr(args, name) <= 0:
            raise C.ConfigError(f"{name} must be positive, got {getattr(args, name)}")
    if args.fps > MAX_VIDEO_FPS:
        raise C.ConfigError(f"fps must be at most {MAX_VIDEO_FPS}, got {args.fps}")
    if min(args.size) < 16 or max(args.size) > MAX_VIDEO_SIDE:
        raise C.ConfigError(f"size must be between 16x16 and {MAX_VIDEO_SIDE}x{MAX_VIDEO_SIDE} "
                            f"pixels, got {args.size}")
    if args.max_steps is not None and args.max_steps <= 0:
        raise C.ConfigError(f"max_steps must be positive, got {args.max_steps}")
    if args.seed is not None:  # else the run's own
        C.check_seed(args.seed)
    used = checkpoint_path(args.run_dir, args.checkpoint).stem
    out = Path(args.out) if args.out else Path(args.run_dir) / "videos" / f"{used}.mp4"
    if out.suffix not in (".mp4", ".gif"):
        raise C.ConfigError(f"--out must end in .mp4 or .gif, got {out}")
    if any(p.exists() and not p.is_dir() for p in out.parents):
        raise C.ConfigError(f"--out {out}: a folder on its path is a file")
    if out.suffix == ".mp4" and any(side % 2 for side in args.size):
        h, w = args.size
        raise C.ConfigError(f"--size {h} {w}: an MP4 (H.264) needs even sides; give --size "
                            f"{h + h % 2} {w + w % 2}, or --out a .gif")
    if args.gif and out.suffix == ".gif":
        raise C.ConfigError("--gif adds a GIF beside the MP4, and --out is already a .gif: "
                            "drop --gif")
    if out.is_dir():
        raise C.ConfigError(f"--out {out} is a directory: give a file name ending in "
                            f"{out.suffix}")
    if args.out and not args.overwrite:  # a run's own videos/ are remade freely
        taken = [p for p in (out, *([out.with_suffix(".gif")] if args.gif else [])) if p.exists()]
        if taken:
            raise C.ConfigError(f"--out: {taken[0]} exists; give --overwrite to replace it, or "
                                "another name")
    saved_config(args.run_dir)  # a missing run is named before any GL question
    video.choose_gl_backend()
    agent, run_cfg, _, meta = load_agent(args.run_dir, args.checkpoint)
    seed = run_cfg.stream_seed("eval_envs") if args.seed is None else args.seed
    clip = video.render_episodes(agent, run_cfg.env, args.episodes, seed, args.size, args.fps,
                                 args.max_steps, **run_cfg.env_kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [video.write_video(clip["frames"], out, clip["fps"])]
    if args.gif:
        written.append(video.write_video(video.gif_frames(clip["frames"], clip["fps"]),
                                         out.with_suffix(".gif"), video.gif_rate(clip["fps"])))
    print(json.dumps({"files": [str(p) for p in written], "frames": len(clip["frames"]),
                      "returns": clip["returns"], "lengths": clip["lengths"],
                      "step": meta.get("step")}))
    return 0


def cmd_report(args) -> int:
    from contrl.report import report

    C.check_seed(args.seed)  # the bootstrap's
    out = report(args.dirs, args.out, args.reps, args.seed, args.pick, not args.no_figures,
                 step=args.up_to)
    where = args.out or args.dirs[0]
    print(f"report of {out['runs']} runs: {where}/report.md")
    return 0


def _split(text: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise ContrlError(f"expected a comma-separated list, got '{text}'")
    return items


def pin_cores() -> None:
    """A run started by ``contrl sweep`` keeps to the cores it was given (CONTRL_CORES), set
    before JAX starts its thread pools, so that concurrent runs do not fight over threads."""
    cores = os.environ.get("CONTRL_CORES")
    if cores:
        os.sched_setaffinity(0, {int(c) for c in cores.split(",")})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["train"]:
        return run_command(argv)
    from contrl.stopping import watching_from_start
    with watching_from_start():  # Ctrl-C during the imports and set-up is acted on, not lost
        return run_command(argv)


def run_command(argv: list[str]) -> int:
    pin_cores()
    parser = build_parser()
    empty = empty_value(argv)
    if empty:
        print(f"contrl: error: {empty}", file=sys.stderr)
        return 2
    try:
        if len(argv) > 1 and argv[0] == "train" and not argv[1].startswith("-"):
            from contrl.registry import resolve_algo
            resolve_algo(argv[1])
    except ContrlError as e:
        print(f"contrl: error: {e}", file=sys.stderr)
        return 2
    args, extra = parser.parse_known_args(argv)
    leaf = vars(args).pop("leaf_parser", parser)  # not an option of the command
    if extra:
        unknown_flags(leaf, args, extra)
    try:
        return {"train": cmd_train, "eval": cmd_eval, "list": cmd_list, "collect": cmd_collect,
                "make-dataset": cmd_make_dataset, "datasets": cmd_datasets, "sweep": cmd_sweep,
                "report": cmd_report, "video": cmd_video}[args.command](args)
    except (ContrlError, C.ConfigError) as e:
        print(f"contrl: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `contrl list | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no flush error at exit
        return 0
    except OSError as e:  # the file system refused something (permissions, disk full, ...)
        where = f" ({e.filename})" if e.filename else ""
        print(f"contrl: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except MemoryError as e:  # e.g. a --buffer-size far past the machine's memory
        print(f"contrl: error: out of memory: {e or 'an allocation failed'} (a smaller "
              "--buffer-size, --num-envs, --batch-size or dataset?)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # a second Ctrl-C, or one before any run directory existed
        print("contrl: error: interrupted; a new run's directory is removed, a resumed run "
              "keeps its last checkpoint", file=sys.stderr)
        return 128 + getattr(e, "signum", 2)  # 130 for SIGINT, 143 for SIGTERM


if __name__ == "__main__":
    sys.exit(main())
