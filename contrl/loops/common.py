"""What every training loop does around its updates.

A loop is a ``Loop`` subclass: it sets up what it needs, then writes only its body
(``iteration``: step the envs or the dataset, update the agent, move the step counter) and
what its full checkpoints hold besides the agent (``checkpoint_parts``). The frame is
shared: the stop flag (Ctrl-C, SIGTERM), checkpoint-on-interrupt, closing, the summary.
``Session`` does the bookkeeping: rows of progress.csv (and TensorBoard/W&B), periodic
deterministic evaluation, the best-policy checkpoint, eval.json, the progress bar, and a wall
clock continued across resumes.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import numpy as np

from contrl.agents.base import Agent
from contrl.data.datasets import check_same_data  # noqa: F401 (the loops' too)
from contrl.envs import EnvPool
from contrl.envs.make import Episode
from contrl.errors import ContrlError, NonFiniteLossError
from contrl.evaluate import evaluate
from contrl.policy import Carry, restore_carry
from contrl.run import (Checkpoint, Logger, Progress, RateMeter, atomic_write_bytes,
                        atomic_write_json, is_online_phase, save_checkpoint)
from contrl.stopping import StopFlag


def crossed(prev: int, step: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in (prev, step]."""
    return every > 0 and prev // every != step // every


def check_finite(metrics: dict, step: int, run_dir: Path) -> dict:
    """Metrics as floats; a NaN or infinite one stops training with a one-line error that says
    what checkpoint there is to go back to."""
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    for k, v in values.items():
        if not np.isfinite(v):
            latest = run_dir / "checkpoints" / "latest.ckpt"
            if latest.exists():
                kept = (f"the last good checkpoint (step {Checkpoint(latest).meta.get('step')}) "
                        f"is {latest}")
            else:
                kept = "no checkpoint had been written yet, so there is nothing to resume"
            raise NonFiniteLossError(f"{k} became {v} at step {step}; training stopped; {kept}")
    return values


class Start(NamedTuple):
    """What a loop starts from: its envs, the agent, and when resuming the checkpoint and the
    bookkeeping state saved in it (None for a fresh run)."""

    pool: EnvPool
    agent: Agent
    checkpoint: Checkpoint | None
    state: dict | None


def start(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool, agent=None) -> Start:
    """The environments and a fresh agent (or ``agent``, e.g. one trained offline), or, when
    resuming, the agent and the environments' exact state from ``latest.ckpt``."""
    pool = EnvPool(run_cfg.env, run_cfg.num_envs, run_cfg.stream_seed("train_envs"),
                   **run_cfg.env_kwargs)
    if agent is None or resume:
        agent = agent_cls.create(algo_cfg, pool.obs_dim, pool.action_dim, run_cfg.seed,
                                 num_envs=run_cfg.num_envs)
    path = run_dir / "checkpoints" / "latest.ckpt"
    if resume and not path.exists():  # killed before its first checkpoint: start it over
        print(f"{run_dir} has no checkpoint yet: starting it from step 0", file=sys.stderr)
        resume = False
    if not resume:
        return Start(pool, agent, None, None)
    ckpt = Checkpoint(path)
    state = ckpt.state()
    if "pool" in state:  # offline runs keep no env state
        pool.load_state(state["pool"])
    return Start(pool, ckpt.restore_agent(agent), ckpt, state)


def dataset_for_run(data, run_cfg, pool: EnvPool):
    """``data`` as the run's policy sees it (its observations with the previous action or
    reward appended where the run appends them), refused unless it fits the run's env."""
    from contrl.data.datasets import with_run_inputs
    data = with_run_inputs(data, pool.obs_dim, run_cfg.prev_action, run_cfg.prev_reward,
                           run_cfg.frame_stack)
    data.check_env(run_cfg.env, pool.obs_dim, pool.action_dim, run_cfg.action_repeat)
    return data


def saved_carry(ckpt: Checkpoint | None, template: Carry, prefix: str = "carry/") -> Carry:
    """The policy state saved in a checkpoint (``template`` when there is none to restore)."""
    if ckpt is None:
        return template
    try:
        return restore_carry(ckpt.arrays(prefix), template, prefix)
    except ValueError as e:
        raise ContrlError(f"{ckpt.path}: {e}") from None


class Session:
    """Logging, evaluation and bookkeeping of one run (see the module docstring)."""

    def __init__(self, run_cfg, algo_cfg, metric_names: tuple[str, ...], run_dir: Path,
                 state: dict | None = None, score=None):
        """``score(mean_return)``, if given, adds a normalized score to every evaluation."""
        state = state or {}
        self.score = score  # the normalized score of a mean return, or None
        self.cfg = run_cfg
        if run_cfg.best_metric == "normalized_score" and score is None:
            raise ContrlError("best_metric normalized_score needs a dataset with reference "
                              "scores to train on (a collection records them with --ref-from "
                              "an expert run)")
        self.run_dir = run_dir
        if run_cfg.best_metric == "success_rate":  # else refused at the first evaluation
            from contrl.envs.make import reports_success
            if not reports_success(run_cfg.env, **run_cfg.env_kwargs):
                raise ContrlError(f"best_metric success_rate: {run_cfg.env} does not report "
                                  "success (use return, or auto)")
        if run_cfg.video_every:
            from contrl import video
            video.check_renderable(run_cfg.env, **run_cfg.env_kwargs)
            if run_cfg.video_every > run_cfg.steps:  # legal (a resume may go further)
                print(f"note: video_every {run_cfg.video_every} is above this run's "
                      f"{run_cfg.steps} steps: it will record no video", file=sys.stderr)
        self.step = state.get("step", 0)
        self.episodes = state.get("episodes", 0)
        best = state.get("best_eval")
        self.best = None if best is None or best == -np.inf else (
            tuple(best) if isinstance(best, list) else (best,))
        self.last_eval = state.get("last_eval")
        self._elapsed = state.get("elapsed", 0.0)
        # the last update's metrics and the episodes finished since the last row: saved, so a
        # run stopped between two rows logs the same next row once resumed
        self.metrics: dict = state.get("metrics", {})
        self.result = None
        self._recent: list[Episode] = [Episode(*e) for e in state.get("recent", [])]
        wandb_cfg = {"run": run_cfg.__dict__, "algo": algo_cfg.__dict__} if run_cfg.wandb else None
        self.logger = Logger(run_dir, metric_names, run_cfg.tensorboard, wandb_cfg,
                             resume_step=self.step if state else None)
        self.progress = Progress(run_cfg.steps, self.step, run_cfg.progress)
        self.rate = RateMeter(self.step)
        self._t0 = time.perf_counter()

    def clock(self) -> float:
        """Wall time of the run, continued across resumes."""
        return self._elapsed + time.perf_counter() - self._t0

    def state(self) -> dict:
        return {"step": self.step, "episodes": self.episodes,
                "best_eval": None if self.best is None else list(self.best),
                "last_eval": self.last_eval, "elapsed": self.clock(),
                "metrics": self.metrics, "recent": [list(e) for e in self._recent]}

    def done(self) -> bool:
        """The step budget is spent, or an evaluation reached ``stop_at_return``."""
        target = self.cfg.stop_at_return
        return self.step >= self.cfg.steps or (
            target is not None and self.last_eval is not None and self.last_eval >= target)

    def finished(self, episodes: list[Episode]) -> None:
        """Record finished training episodes."""
        self._recent += episodes
        self.episodes += len(episodes)

    def rank(self, result: dict) -> tuple[float, ...]:
        """What best.ckpt maximizes, for an evaluation ``result``: the chosen metric, then the
        mean return to break ties (success rates tie often)."""
        metric = self.cfg.best_metric
        if metric == "auto":
            metric = "success_rate" if "success_rate" in result else "return"
        if metric == "return":
            return (result["mean_return"],)
        if metric not in result:
            raise ContrlError(f"best_metric {metric}: {self.cfg.env} does not report it")
        return (result[metric], result["mean_return"])

    def advance(self, prev: int, agent: Callable[[], Agent]) -> None:
        """After the step counter moved from ``prev`` to ``self.step``: log a row when one is
        due, and evaluate the agent ``agent()`` returns (keeping the best policy) when that is
        due (``agent`` is called only then: a vmapped group slices its member's agent out)."""
        step, cfg = self.step, self.cfg
        do_eval = crossed(prev, step, cfg.eval_every) or step >= cfg.steps
        if crossed(prev, step, cfg.video_every):
            self.record_video(agent())
        if not (do_eval or crossed(prev, step, cfg.log_every)):
            return
        row = {"step": step, "time": self.clock(), "steps_per_sec": self.rate(step),
               "episodes": self.episodes, **self.metrics}
        if self._recent:
            row["episode_return"] = float(np.mean([e.ret for e in self._recent]))
            row["episode_length"] = float(np.mean([e.length for e in self._recent]))
            outcomes = [e.success for e in self._recent if e.success is not None]
            if outcomes:
                row["episode_success"] = float(np.mean(outcomes))
            self._recent = []
        if do_eval:
            agent = agent()
            result = evaluate(agent, cfg.env, cfg.eval_episodes, cfg.stream_seed("eval_envs"),
                              trace=True, **cfg.env_kwargs)
            result["step"] = step
            trace = result.pop("trace", None)
            self.result, self.last_eval = result, result["mean_return"]
            row.update(eval_return=self.last_eval, eval_std=result["std_return"],
                       eval_success_rate=result.get("success_rate"))
            score = self.score(self.last_eval) if self.score is not None else None
            if score is not None:
                result["normalized_score"] = row["normalized_score"] = score
            rank = self.rank(result)
            if self.best is None or rank > self.best:
                self.best = rank
                save_checkpoint(self.run_dir / "checkpoints" / "best.ckpt", agent,
                                {"step": step, "kind": "policy", "eval": self.last_eval,
                                 "best_metric": list(rank)})
            atomic_write_json(self.run_dir / "eval.json", result)
            if trace is not None:
                self.draw_trace(trace)
        self.logger.log(row)
        self.progress.update(step, row["steps_per_sec"], self.last_eval)

    def draw_trace(self, trace) -> None:
        """A maze evaluation's paths to eval.png (beside eval.json) and TensorBoard."""
        from contrl.maze_picture import draw_trace
        picture = draw_trace(trace, f"{self.cfg.env} step {self.step}")
        atomic_write_bytes(self.run_dir / "eval.png", picture.png)
        self.logger.log_image("eval/paths", picture.rgb, self.step)

    def record_video(self, agent) -> None:
        """One deterministic episode to videos/step-<N>.mp4, its frames to TensorBoard."""
        from contrl import video
        clip = video.render_episodes(agent, self.cfg.env, 1, self.cfg.stream_seed("eval_envs"),
                                     **self.cfg.env_kwargs)
        out = self.run_dir / "videos"
        out.mkdir(exist_ok=True)
        video.write_video(clip["frames"], out / f"step-{self.step}.mp4", clip["fps"])
        self.logger.log_image("video", video.frame_strip(clip["frames"]), self.step)

    def after_steps(self, prev: int, agent: Callable[[], Agent], metrics: dict | None,
                    checkpoint: Callable[[], None]) -> None:
        """Once the step counter has moved from ``prev``: check the update's metrics (if there
        was an update), log/evaluate ``agent()`` when due, and call ``checkpoint()`` when one
        is due."""
        if metrics is not None:
            self.metrics = check_finite(metrics, self.step, self.run_dir)
        self.advance(prev, agent)
        if crossed(prev, self.step, self.cfg.checkpoint_every) or self.done():
            checkpoint()

    def close(self) -> None:
        self.progress.close()
        self.logger.close()

    def summary(self, interrupted: bool) -> dict:
        return {"step": self.step, "run_dir": str(self.run_dir), "eval": self.result,
                "interrupted": interrupted}


class Loop:
    """The frame every training loop shares. A subclass sets ``self.run`` (its Session) and
    ``self.agent`` in ``__init__`` and implements ``iteration`` (which moves ``run.step`` and
    ends with ``self.after(prev, metrics)``) and ``checkpoint_parts``."""

    run: Session
    agent: Agent

    def __init__(self, run_dir: Path, algo: str):
        self.run_dir = Path(run_dir)
        self.algo = algo

    def iteration(self) -> None:
        raise NotImplementedError

    def checkpoint_parts(self) -> tuple[dict | None, dict]:
        """(named arrays, JSON-able state) a full checkpoint holds besides the agent and the
        session's bookkeeping."""
        return None, {}

    def close(self) -> None:
        """Release what the loop holds (envs)."""

    def current_agent(self) -> Agent:
        """The agent as it is now (what evaluations and checkpoints save)."""
        return self.agent

    def checkpoint(self) -> None:
        arrays, state = self.checkpoint_parts()
        save_checkpoint(self.run_dir / "checkpoints" / "latest.ckpt", self.current_agent(),
                        {"step": self.run.step, "kind": "full"}, arrays,
                        {**self.run.state(), **state})

    def after(self, prev: int, metrics: dict | None) -> None:
        """End of an iteration: metrics, logging, evaluation, periodic checkpoint."""
        self.run.after_steps(prev, self.current_agent, metrics, self.checkpoint)

    def position(self) -> str:
        """Where the run stands, for the interruption notice."""
        return f"step {self.run.step}"

    def resume_command(self) -> str:
        """How to continue this run once interrupted."""
        run = self.run_dir.parent if is_online_phase(self.run_dir) else self.run_dir
        return f"contrl train {self.algo} --resume {run}"

    def __call__(self, stop: StopFlag | None = None) -> dict:
        """Iterate until the budget is spent or a stop signal arrives (then save a checkpoint
        and say how to resume); always close; return the summary. ``stop``: a flag already
        watching the signals (e.g. since before the loop was set up)."""
        if stop is None:
            with StopFlag() as stop:
                return self._drive(stop)
        return self._drive(stop)

    def _drive(self, stop: StopFlag) -> dict:
        try:
            while not self.run.done() and not stop.raised:
                self.iteration()
            if stop.raised:
                self.checkpoint()
                print(f"interrupted at {self.position()}; checkpoint saved. Resume with "
                      f"`{self.resume_command()}`")
        finally:
            self.run.close()
            self.close()
        return {**self.run.summary(stop.raised), "signal": stop.signum}
