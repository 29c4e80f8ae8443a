"""The ``contrl`` command line: parse, call, print. Options are generated from the config
dataclasses, so every hyperparameter is a documented flag."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from contrl import config as C
from contrl.errors import ContrlError


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


def build_parser() -> argparse.ArgumentParser:
    from contrl.registry import REGISTRY

    parser = argparse.ArgumentParser(prog="contrl", description="Continuous-control RL on MuJoCo.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train an agent", description="Train an agent.")
    algos = train.add_subparsers(dest="algo", required=True, metavar="ALGO")
    for name, (cfg_cls, _, _) in REGISTRY.items():
        p = algos.add_parser(name, help=(cfg_cls.__doc__ or "").strip().splitlines()[0],
                             description=f"Train {name}. Defaults < preset for the env < flags.")
        p.add_argument("env", nargs="?", help="environment id, e.g. HalfCheetah-v5")
        p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
        p.add_argument("--no-preset", action="store_true", help="ignore the per-env preset")
        _add_config_args(p, C.RunConfig, "run options", skip=("env",))
        _add_config_args(p, cfg_cls, f"{name} hyperparameters")

    ev = sub.add_parser("eval", help="evaluate a saved run deterministically")
    ev.add_argument("run_dir")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    ev.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the run's)")

    sub.add_parser("list", help="algorithms, environments and presets")

    co = sub.add_parser("collect", help="roll out a saved policy (or a random one) into a "
                        "Minari dataset", description="Write a Minari dataset (under "
                        "MINARI_DATASETS_PATH, default ~/.minari/datasets).")
    co.add_argument("run_dir", nargs="?", help="run whose policy acts (omit with --random)")
    co.add_argument("--name", required=True, help="dataset id, e.g. hopper-expert-v0")
    co.add_argument("--steps", type=int, default=1_000_000, help="transitions to collect")
    co.add_argument("--noise", type=float, default=0.0,
                    help="std of Gaussian noise added to the policy's actions")
    co.add_argument("--random", action="store_true", help="uniform random actions")
    co.add_argument("--env", default=None, help="environment (needed with --random)")
    co.add_argument("--checkpoint", choices=("best", "latest"), default=None,
                    help="checkpoint whose policy acts (default best; latest with --from-buffer)")
    co.add_argument("--seed", type=int, default=0)
    co.add_argument("--num-envs", type=int, default=8, help="envs stepped in lockstep")
    co.add_argument("--ref-from", default=None, metavar="ID",
                    help="take the reference min/max scores from this dataset (e.g. a medium "
                         "dataset takes the expert dataset's) instead of evaluating them")
    co.add_argument("--from-buffer", action="store_true",
                    help="write the run's saved replay buffer (its --checkpoint, default "
                         "latest) instead of rolling out its policy: D4RL's medium-replay")
    co.add_argument("--concat", nargs="+", default=None, metavar="ID",
                    help="write these datasets one after the other (e.g. medium then expert) "
                         "as --name; no run needed")

    sub.add_parser("datasets", help="local datasets with their sizes and average returns")
    return parser


def cmd_train(args) -> int:
    from contrl.train import train

    overrides = {k: v for k, v in vars(args).items()
                 if k not in ("command", "algo", "env", "resume", "no_preset")}
    out = train(args.algo, args.env, overrides, resume=args.resume, use_preset=not args.no_preset)
    ev = out.get("eval")
    msg = f"run: {out['run_dir']}  step {out['step']}"
    if ev:
        msg += f"  eval return {ev['mean_return']:.1f} +/- {ev['std_return']:.1f}"
    print(msg)
    signum = out.get("signal") or (out.get("online") or {}).get("signal")
    return 128 + signum if signum else 0  # interrupted (saved): 130 for SIGINT, 143 for SIGTERM


def cmd_eval(args) -> int:
    from contrl.evaluate import evaluate
    from contrl.run import atomic_write_json
    from contrl.rundir import load_agent

    if args.episodes <= 0:
        raise C.ConfigError(f"episodes must be positive, got {args.episodes}")
    agent, run_cfg, _, meta = load_agent(args.run_dir, args.checkpoint)
    seed = run_cfg.seed if args.seed is None else args.seed
    result = evaluate(agent, run_cfg.env, args.episodes, seed, **run_cfg.env_kwargs)
    result.update(checkpoint=args.checkpoint, step=meta.get("step"))
    atomic_write_json(os.path.join(args.run_dir, f"eval-{args.checkpoint}.json"), result)
    print(json.dumps({k: v for k, v in result.items() if k != "returns"}))
    return 0


def cmd_list(args) -> int:
    from contrl.envs import known_env_ids
    from contrl.registry import REGISTRY

    print("algorithms:")
    for name, (cfg_cls, _, kind) in REGISTRY.items():
        print(f"  {name:8s} {kind:10s} {(cfg_cls.__doc__ or '').strip().splitlines()[0]}")
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


def cmd_collect(args) -> int:
    from contrl.data.collect import concat
    from contrl.rundir import collect_run, export_run_buffer

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
    if args.num_envs <= 0:
        raise C.ConfigError(f"num_envs must be positive, got {args.num_envs}")
    out = collect_run(None if args.random else args.run_dir, args.name, args.steps, args.noise,
                      args.env, args.seed, args.checkpoint or "best", args.num_envs,
                      ref_from=args.ref_from)
    print(json.dumps(out))
    return 0


def cmd_datasets(args) -> int:
    from contrl.data.datasets import list_datasets, minari_root

    rows = list_datasets()
    print(f"datasets in {minari_root()}:" if rows else f"no datasets in {minari_root()}")
    for r in rows:
        avg = "-" if r["average_return"] is None else f"{r['average_return']:.1f}"
        print(f"  {r['id']:32s} {r['env'] or '?':18s} {r['episodes']:>6} episodes "
              f"{r['steps']:>9} steps {r['size_mb']:8.1f} MB  average return {avg}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        if len(argv) > 1 and argv[0] == "train" and not argv[1].startswith("-"):
            from contrl.registry import resolve_algo
            resolve_algo(argv[1])
    except ContrlError as e:
        print(f"contrl: error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return {"train": cmd_train, "eval": cmd_eval, "list": cmd_list, "collect": cmd_collect,
                "datasets": cmd_datasets}[args.command](args)
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
    except KeyboardInterrupt:  # a second Ctrl-C, or one before any run directory existed
        print("contrl: error: interrupted; a new run's directory is removed, a resumed run "
              "keeps its last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
