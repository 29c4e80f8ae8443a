"""The on-policy loop shared by A2C and PPO: collect a rollout of ``rollout_steps`` steps on
``num_envs`` environments, then one compiled update call.

An agent provides ``create``, ``sample_actions(obs)`` (unclipped actions; the env gets them
clipped to [-1, 1]), ``eval_actions(obs)``, ``update(rollout, lr_scale)`` and ``METRICS``.
Checkpoints are written between rollouts, so they hold no rollout data; resuming continues
exactly (agent, normalizers, RNG keys, env states mid-episode, step counter).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contrl.agents.onpolicy import Rollout
from contrl.loops.common import Session, StopFlag, start
from contrl.run import save_checkpoint


def train_onpolicy(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                   algo: str = "<algo>") -> dict:
    n_envs, horizon = run_cfg.num_envs, algo_cfg.rollout_steps
    pool, agent, _, state = start(run_cfg, algo_cfg, agent_cls, run_dir, resume)
    ckpt_dir = run_dir / "checkpoints"
    run = Session(run_cfg, algo_cfg, agent_cls.METRICS, run_dir, state)

    def checkpoint():
        save_checkpoint(ckpt_dir / "latest.ckpt", agent, {"step": run.step, "kind": "full"},
                        None, {**run.state(), "pool": pool.state()})

    shape = (horizon, n_envs)
    obs = np.zeros(shape + (pool.obs_dim,), np.float32)
    next_obs = np.zeros_like(obs)
    actions = np.zeros(shape + (pool.action_dim,), np.float32)
    rewards = np.zeros(shape, np.float32)
    terminated = np.zeros(shape, np.float32)
    done = np.zeros(shape, np.float32)
    try:
        with StopFlag() as stop:
            while not run.done() and not stop.raised:
                for t in range(horizon):
                    action, agent = agent.sample_actions(pool.obs)
                    actions[t] = action
                    obs[t] = pool.obs
                    next_obs[t], rewards[t], term, trunc = pool.step(np.clip(actions[t], -1, 1))
                    terminated[t], done[t] = term, term | trunc
                    run.finished(pool.advance(next_obs[t], term | trunc))
                lr_scale = 1.0 - run.step / run_cfg.steps if algo_cfg.anneal_lr else 1.0
                agent, metrics = agent.update(
                    Rollout(obs, actions, rewards, terminated, done, next_obs),
                    np.float32(max(lr_scale, 0.0)))
                prev = run.step
                run.step += horizon * n_envs
                run.after_steps(prev, agent, metrics, checkpoint)
            run.stopped(stop, checkpoint, algo)
    finally:
        run.close()
        pool.close()
    return run.summary(stop.raised)
