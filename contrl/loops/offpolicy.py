"""The online off-policy loop shared by every replay-buffer agent.

An agent provides ``create(cfg, obs_dim, action_dim, seed, num_envs)``, ``sample_actions(obs)``,
``eval_actions(obs)``, ``update(batches)``, a ``METRICS`` tuple and optionally
``on_episode_end(done_mask)`` (e.g. to restart correlated exploration noise); its config provides
``buffer_size``, ``batch_size``, ``gamma``, ``n_step``, ``learning_starts``, ``utd_ratio``
and ``update_every`` (see ``OffPolicyConfig``). Nothing else about the algorithm is known here.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

import jax
import numpy as np

from contrl.data import ReplayBuffer
from contrl.envs import EnvPool
from contrl.errors import NonFiniteLossError
from contrl.evaluate import evaluate
from contrl.run import (Checkpoint, Logger, Progress, RateMeter, atomic_write_json,
                        save_checkpoint)


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the next step boundary."""

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


def _crossed(prev: int, step: int, every: int) -> bool:
    return every > 0 and prev // every != step // every


def _check_finite(metrics: dict, step: int, run_dir: Path) -> dict:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    for k, v in values.items():
        if not np.isfinite(v):
            raise NonFiniteLossError(
                f"{k} became {v} at step {step}; training stopped. The last good checkpoint "
                f"is kept in {run_dir / 'checkpoints'}"
            )
    return values


def train_offpolicy(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                    algo: str = "<algo>") -> dict:
    seed, n_envs = run_cfg.seed, run_cfg.num_envs
    pool = EnvPool(run_cfg.env, n_envs, seed, run_cfg.action_repeat)
    agent = agent_cls.create(algo_cfg, pool.obs_dim, pool.action_dim, seed, num_envs=n_envs)
    on_episode_end = getattr(agent_cls, "on_episode_end", None)
    buffer = ReplayBuffer(algo_cfg.buffer_size, pool.obs_dim, pool.action_dim, n_envs, seed)
    rng = np.random.default_rng(seed + 1)  # warm-up actions
    step, episodes, best, last_eval, elapsed = 0, 0, -np.inf, None, 0.0
    ckpt_dir = run_dir / "checkpoints"

    if resume:
        ckpt = Checkpoint(ckpt_dir / "latest.ckpt")
        agent = ckpt.restore_agent(agent)
        state = ckpt.state()
        buffer.load_state(ckpt.arrays("buffer/"), state["buffer_rng"])
        pool.load_state(state["pool"])
        rng.bit_generator.state = state["loop_rng"]
        step, episodes, best = state["step"], state["episodes"], state["best_eval"]
        last_eval, elapsed = state.get("last_eval"), state.get("elapsed", 0.0)

    def clock() -> float:  # wall time of the run, continued across resumes
        return elapsed + time.perf_counter() - t0

    def checkpoint():
        state = {"step": step, "episodes": episodes, "best_eval": best, "last_eval": last_eval,
                 "elapsed": clock(),
                 "pool": pool.state(), "loop_rng": rng.bit_generator.state,
                 "buffer_rng": buffer.rng.bit_generator.state}
        save_checkpoint(ckpt_dir / "latest.ckpt", agent, {"step": step, "kind": "full"},
                        buffer.state(), state)

    def run_eval():
        result = evaluate(lambda o: agent.eval_actions(o), run_cfg.env, run_cfg.eval_episodes,
                          seed, run_cfg.action_repeat)
        result["step"] = step
        return result

    logger = Logger(run_dir, agent_cls.METRICS, run_cfg.tensorboard,
                    {"run": run_cfg.__dict__, "algo": algo_cfg.__dict__} if run_cfg.wandb else None,
                    resume=resume)
    progress = Progress(run_cfg.steps, step, run_cfg.progress)
    rate = RateMeter(step)
    t0 = time.perf_counter()
    metrics: dict = {}
    recent: list[tuple[float, int]] = []
    k_updates = algo_cfg.utd_ratio * algo_cfg.update_every * n_envs
    result = None
    try:
        with _StopFlag() as stop:
            while step < run_cfg.steps and not stop.raised:
                if step < algo_cfg.learning_starts:
                    actions = rng.uniform(-1.0, 1.0, (n_envs, pool.action_dim)).astype(np.float32)
                else:
                    actions, agent = agent.sample_actions(pool.obs)
                    actions = np.asarray(actions)
                next_obs, reward, terminated, truncated = pool.step(actions)
                buffer.add(pool.obs, actions, reward, terminated, truncated, next_obs)
                done = terminated | truncated
                finished = pool.advance(next_obs, done)
                if finished and on_episode_end is not None:
                    agent = on_episode_end(agent, done)
                recent += finished
                episodes += len(finished)
                prev, step = step, step + n_envs

                if step >= algo_cfg.learning_starts and (step // n_envs) % algo_cfg.update_every == 0:
                    batches = buffer.sample(algo_cfg.batch_size, algo_cfg.gamma, k_updates,
                                            algo_cfg.n_step)
                    agent, metrics = agent.update(batches)
                    metrics = _check_finite(metrics, step, run_dir)

                do_eval = _crossed(prev, step, run_cfg.eval_every) or step >= run_cfg.steps
                if do_eval or _crossed(prev, step, run_cfg.log_every):
                    row = {"step": step, "time": clock(),
                           "steps_per_sec": rate(step), "episodes": episodes, **metrics}
                    if recent:
                        row["episode_return"] = float(np.mean([r for r, _ in recent]))
                        row["episode_length"] = float(np.mean([n for _, n in recent]))
                        recent = []
                    if do_eval:
                        result = run_eval()
                        last_eval = result["mean_return"]
                        row.update(eval_return=last_eval, eval_std=result["std_return"])
                        if last_eval > best:
                            best = last_eval
                            save_checkpoint(ckpt_dir / "best.ckpt", agent,
                                            {"step": step, "kind": "policy", "eval": last_eval})
                        atomic_write_json(run_dir / "eval.json", result)
                    logger.log(row)
                    progress.update(step, row["steps_per_sec"], last_eval)
                if _crossed(prev, step, run_cfg.checkpoint_every) or step >= run_cfg.steps:
                    checkpoint()
            if stop.raised:
                checkpoint()
                print(f"interrupted at step {step}; checkpoint saved. Resume with "
                      f"`contrl train {algo} --resume {run_dir}`")
    finally:
        progress.close()
        logger.close()
        pool.close()
    return {"step": step, "run_dir": str(run_dir), "eval": result, "interrupted": stop.raised}
