"""What every training loop does around its updates.

A loop steps environments and calls its agent's update; ``Session`` does the rest: rows of
progress.csv (and TensorBoard/W&B), periodic deterministic evaluation, the best-policy
checkpoint, eval.json, the progress bar, a wall clock continued across resumes, and the
bookkeeping that goes into every full checkpoint.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

import jax
import numpy as np

from contrl.envs import EnvPool
from contrl.errors import NonFiniteLossError
from contrl.evaluate import evaluate
from contrl.run import (Checkpoint, Logger, Progress, RateMeter, atomic_write_json,
                        save_checkpoint)


class StopFlag:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the next safe point."""

    def __init__(self):
        self.raised = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.raised = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def crossed(prev: int, step: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in (prev, step]."""
    return every > 0 and prev // every != step // every


def check_finite(metrics: dict, step: int, run_dir: Path) -> dict:
    """Metrics as floats; a NaN or infinite one stops training with a one-line error."""
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    for k, v in values.items():
        if not np.isfinite(v):
            raise NonFiniteLossError(
                f"{k} became {v} at step {step}; training stopped. The last good checkpoint "
                f"is kept in {run_dir / 'checkpoints'}"
            )
    return values


def start(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool, agent=None):
    """The environments and a fresh agent (or ``agent``, e.g. one trained offline), or, when
    resuming, the agent and the environments' exact state from ``latest.ckpt``.
    Returns (pool, agent, checkpoint or None, saved state or None)."""
    pool = EnvPool(run_cfg.env, run_cfg.num_envs, run_cfg.seed, run_cfg.action_repeat)
    if agent is None or resume:
        agent = agent_cls.create(algo_cfg, pool.obs_dim, pool.action_dim, run_cfg.seed,
                                 num_envs=run_cfg.num_envs)
    if not resume:
        return pool, agent, None, None
    ckpt = Checkpoint(run_dir / "checkpoints" / "latest.ckpt")
    state = ckpt.state()
    if "pool" in state:  # offline runs keep no env state
        pool.load_state(state["pool"])
    return pool, ckpt.restore_agent(agent), ckpt, state


class Session:
    """Logging, evaluation and bookkeeping of one run (see the module docstring)."""

    def __init__(self, run_cfg, algo_cfg, metric_names: tuple[str, ...], run_dir: Path,
                 state: dict | None = None, score=None):
        """``score(mean_return)``, if given, adds a normalized score to every evaluation."""
        state = state or {}
        self._score = score
        self.cfg = run_cfg
        self.run_dir = run_dir
        self.step = state.get("step", 0)
        self.episodes = state.get("episodes", 0)
        self.best = state.get("best_eval", -np.inf)
        self.last_eval = state.get("last_eval")
        self._elapsed = state.get("elapsed", 0.0)
        self.metrics: dict = {}
        self.result = None
        self._recent: list[tuple[float, int]] = []
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
        return {"step": self.step, "episodes": self.episodes, "best_eval": self.best,
                "last_eval": self.last_eval, "elapsed": self.clock()}

    def done(self) -> bool:
        """The step budget is spent, or an evaluation reached ``stop_at_return``."""
        target = self.cfg.stop_at_return
        return self.step >= self.cfg.steps or (
            target is not None and self.last_eval is not None and self.last_eval >= target)

    def finished(self, episodes: list[tuple[float, int]]) -> None:
        """Record finished training episodes as (return, length)."""
        self._recent += episodes
        self.episodes += len(episodes)

    def advance(self, prev: int, agent) -> None:
        """After the step counter moved from ``prev`` to ``self.step``: log a row when one is
        due, and evaluate ``agent.eval_actions`` (keeping the best policy) when that is due."""
        step, cfg = self.step, self.cfg
        do_eval = crossed(prev, step, cfg.eval_every) or step >= cfg.steps
        if not (do_eval or crossed(prev, step, cfg.log_every)):
            return
        row = {"step": step, "time": self.clock(), "steps_per_sec": self.rate(step),
               "episodes": self.episodes, **self.metrics}
        if self._recent:
            row["episode_return"] = float(np.mean([r for r, _ in self._recent]))
            row["episode_length"] = float(np.mean([n for _, n in self._recent]))
            self._recent = []
        if do_eval:
            result = evaluate(lambda o: agent.eval_actions(o), cfg.env, cfg.eval_episodes,
                              cfg.seed, cfg.action_repeat)
            result["step"] = step
            self.result, self.last_eval = result, result["mean_return"]
            row.update(eval_return=self.last_eval, eval_std=result["std_return"])
            score = self._score(self.last_eval) if self._score is not None else None
            if score is not None:
                result["normalized_score"] = row["normalized_score"] = score
            if self.last_eval > self.best:
                self.best = self.last_eval
                save_checkpoint(self.run_dir / "checkpoints" / "best.ckpt", agent,
                                {"step": step, "kind": "policy", "eval": self.last_eval})
            atomic_write_json(self.run_dir / "eval.json", result)
        self.logger.log(row)
        self.progress.update(step, row["steps_per_sec"], self.last_eval)

    def after_steps(self, prev: int, agent, metrics: dict | None, checkpoint) -> None:
        """Once the step counter has moved from ``prev``: check the update's metrics (if there
        was an update), log/evaluate when due, and call ``checkpoint()`` when one is due."""
        if metrics is not None:
            self.metrics = check_finite(metrics, self.step, self.run_dir)
        self.advance(prev, agent)
        if crossed(prev, self.step, self.cfg.checkpoint_every) or self.done():
            checkpoint()

    def stopped(self, stop: StopFlag, checkpoint, algo: str) -> None:
        """After the loop: if it was interrupted, save a checkpoint and say how to resume."""
        if stop.raised:
            checkpoint()
            run = self.run_dir
            if not (run / "config.json").exists() and (run.parent / "config.json").exists():
                run = run.parent  # an online phase lives inside its offline run
            print(f"interrupted at step {self.step}; checkpoint saved. Resume with "
                  f"`contrl train {algo} --resume {run}`")

    def close(self) -> None:
        self.progress.close()
        self.logger.close()

    def summary(self, interrupted: bool) -> dict:
        return {"step": self.step, "run_dir": str(self.run_dir), "eval": self.result,
                "interrupted": interrupted}
