"""The online off-policy loop shared by every replay-buffer agent.

An agent provides ``create(cfg, obs_dim, action_dim, seed, num_envs)``, ``sample_actions(obs)``,
``eval_actions(obs)``, ``update(batches)``, a ``METRICS`` tuple and optionally
``on_episode_end(done_mask)`` (e.g. to restart correlated exploration noise); its config provides
``buffer_size``, ``batch_size``, ``gamma``, ``n_step``, ``learning_starts``, ``utd_ratio``
and ``update_every`` (see ``OffPolicyConfig``). Nothing else about the algorithm is known here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contrl.data import ReplayBuffer
from contrl.loops.common import Session, StopFlag, start
from contrl.run import save_checkpoint


def train_offpolicy(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                    algo: str = "<algo>", agent=None) -> dict:
    """``agent``: start from this agent (e.g. trained offline) instead of a fresh one."""
    seed, n_envs = run_cfg.seed, run_cfg.num_envs
    fresh = agent is None
    pool, agent, ckpt, state = start(run_cfg, algo_cfg, agent_cls, run_dir, resume, agent)
    on_episode_end = getattr(agent_cls, "on_episode_end", None)
    buffer = ReplayBuffer(algo_cfg.buffer_size, pool.obs_dim, pool.action_dim, n_envs, seed)
    rng = np.random.default_rng(seed + 1)  # warm-up actions
    ckpt_dir = run_dir / "checkpoints"
    if ckpt is not None:
        buffer.load_state(ckpt.arrays("buffer/"), state["buffer_rng"])
        rng.bit_generator.state = state["loop_rng"]
    elif fresh and hasattr(agent, "pretrain"):  # e.g. imitation seeding, once, before the first step
        agent = agent.pretrain(algo_cfg, run_cfg.env, seed)
    offline, n_offline = None, round(algo_cfg.offline_ratio * algo_cfg.batch_size)
    data_rng = np.random.default_rng(seed + 2)
    if n_offline > 0:  # symmetric sampling: part of every batch from the dataset
        from contrl.data.datasets import load_dataset
        offline = load_dataset(algo_cfg.dataset, run_cfg.env)
        offline.check_env(run_cfg.env, pool.obs_dim, pool.action_dim)
        if state is not None:
            data_rng.bit_generator.state = state["data_rng"]
    scored = offline is not None and offline.ref_max_score is not None
    run = Session(run_cfg, algo_cfg, ("normalized_score",) * scored + agent_cls.METRICS, run_dir,
                  state, score=offline.normalized_score if scored else None)

    def checkpoint():
        save_checkpoint(ckpt_dir / "latest.ckpt", agent, {"step": run.step, "kind": "full"},
                        buffer.state(),
                        {**run.state(), "pool": pool.state(), "loop_rng": rng.bit_generator.state,
                         "buffer_rng": buffer.rng.bit_generator.state,
                         "data_rng": data_rng.bit_generator.state})

    k_updates = algo_cfg.utd_ratio * algo_cfg.update_every * n_envs

    def sample():
        batches = buffer.sample(algo_cfg.batch_size - n_offline, algo_cfg.gamma, k_updates,
                                algo_cfg.n_step)
        if offline is None:
            return batches
        extra = offline.sample(data_rng, n_offline, algo_cfg.gamma, k_updates)
        return type(batches)(*(np.concatenate([a, b], axis=1) for a, b in zip(batches, extra)))
    try:
        with StopFlag() as stop:
            while not run.done() and not stop.raised:
                if run.step < algo_cfg.learning_starts and algo_cfg.random_warmup:
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
                run.finished(finished)
                prev = run.step
                run.step += n_envs
                metrics = None
                if (run.step >= algo_cfg.learning_starts
                        and (run.step // n_envs) % algo_cfg.update_every == 0):
                    agent, metrics = agent.update(sample())
                run.after_steps(prev, agent, metrics, checkpoint)
            run.stopped(stop, checkpoint, algo)
    finally:
        run.close()
        pool.close()
    return run.summary(stop.raised)
