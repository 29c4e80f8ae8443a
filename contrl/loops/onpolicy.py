"""The on-policy loop shared by A2C and PPO: collect a rollout of ``rollout_steps`` steps on
``num_envs`` environments, then one compiled update call.

The agent is used through ``contrl.agents.base.Agent`` (``sample_actions`` gives unclipped
actions; the env gets them clipped to [-1, 1]); ``update(rollout, lr_scale)`` takes the whole
rollout. Checkpoints are written between rollouts, so they hold no rollout data; resuming
continues exactly (agent, normalizers, RNG keys, env states and policy state mid-episode, step
counter).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contrl.agents.onpolicy import Rollout
from contrl.loops.common import Loop, Session, saved_carry, start
from contrl.policy import carry_arrays, reset_carry


class OnPolicyLoop(Loop):
    def __init__(self, run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                 algo: str = "<algo>"):
        super().__init__(run_dir, algo)
        self.pool, self.agent, ckpt, state = start(run_cfg, algo_cfg, agent_cls, run_dir, resume)
        self.run_cfg, self.cfg = run_cfg, algo_cfg
        self.carry = saved_carry(ckpt, self.agent.initial_carry(run_cfg.num_envs))
        self.run = Session(run_cfg, algo_cfg, agent_cls.METRICS, run_dir, state)
        shape = (algo_cfg.rollout_steps, run_cfg.num_envs)
        self.obs = np.zeros(shape + (self.pool.obs_dim,), np.float32)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros(shape + (self.pool.action_dim,), np.float32)
        self.rewards = np.zeros(shape, np.float32)
        self.terminated = np.zeros(shape, np.float32)
        self.done = np.zeros(shape, np.float32)

    def checkpoint_parts(self):
        return carry_arrays(self.carry), {"pool": self.pool.state()}

    def iteration(self) -> None:
        pool, run = self.pool, self.run
        n_envs = self.run_cfg.num_envs
        # steps asked are steps done: the last rollout is shorter when the budget ends inside it
        horizon = min(self.cfg.rollout_steps, (self.run_cfg.steps - run.step) // n_envs)
        for t in range(horizon):
            action, self.carry, self.agent = self.agent.sample_actions(pool.obs, self.carry)
            self.actions[t] = action
            self.obs[t] = pool.obs
            self.next_obs[t], self.rewards[t], term, trunc = pool.step(np.clip(self.actions[t], -1, 1))
            self.terminated[t], self.done[t] = term, term | trunc
            finished = pool.advance(self.next_obs[t], term | trunc)
            if finished:
                self.carry = reset_carry(self.agent, self.carry, term | trunc)
            run.finished(finished)
        lr_scale = 1.0 - run.step / self.run_cfg.steps if self.cfg.anneal_lr else 1.0
        part = slice(0, horizon)
        self.agent, metrics = self.agent.update(
            Rollout(self.obs[part], self.actions[part], self.rewards[part],
                    self.terminated[part], self.done[part], self.next_obs[part]),
            np.float32(max(lr_scale, 0.0)))
        prev = run.step
        run.step += horizon * n_envs
        self.after(prev, metrics)

    def close(self) -> None:
        self.pool.close()


def train_onpolicy(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                   algo: str = "<algo>") -> dict:
    return OnPolicyLoop(run_cfg, algo_cfg, agent_cls, run_dir, resume, algo)()
