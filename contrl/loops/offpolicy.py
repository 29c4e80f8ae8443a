"""The online off-policy loop shared by every replay-buffer agent: env -> buffer -> K-step
update -> logger/checkpoint.

The agent is used through ``contrl.agents.base.Agent`` only; its config provides
``buffer_size``, ``batch_size``, ``gamma``, ``n_step``, ``learning_starts``,
``random_warmup``, ``utd_ratio``, ``update_every``, ``dataset`` and ``offline_ratio`` (see
``OffPolicyConfig``). Each env's policy state (the carry) goes back to its initial value at
that env's episode end and is saved in every full checkpoint.
"""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

from contrl.data import ReplayBuffer
from contrl.data.batch import concat
from contrl.loops.common import (Loop, Session, check_same_data, dataset_for_run, saved_carry,
                                 start)
from contrl.policy import carry_arrays, reset_carry


class OffPolicyLoop(Loop):
    def __init__(self, run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                 algo: str = "<algo>", agent=None, score=None):
        """``score``: the normalized score of a return, for an online phase whose batches
        take nothing from its dataset (the mixed-in dataset's own scores otherwise)."""
        super().__init__(run_dir, algo)
        n_envs = run_cfg.num_envs
        fresh = agent is None
        self.offline, self.n_offline = None, round(algo_cfg.offline_ratio * algo_cfg.batch_size)
        if self.n_offline > 0:  # symmetric sampling: part of every batch from the dataset
            from contrl.data.datasets import load_dataset
            data = load_dataset(algo_cfg.dataset, run_cfg.env, run_cfg.obs_keys,
                                algo_cfg.dataset_action_units).head(
                getattr(algo_cfg, "dataset_size", 0))  # an offline run's online phase too
            algo_cfg.check_dataset(data)  # before anything is built
        self.pool, self.agent, ckpt, state = start(run_cfg, algo_cfg, agent_cls, run_dir,
                                                   resume, agent)
        algo_cfg.check_episode_limit(self.pool.episode_limit, n_envs)
        self.data_rng = run_cfg.stream("offline_mix")
        if self.n_offline > 0:
            self.offline = dataset_for_run(data, run_cfg, self.pool)
            if state is not None:
                check_same_data(state.get("dataset_fingerprint"), self.offline,
                                algo_cfg.dataset, str(run_dir),
                                "give the data it was trained on, or start a new run")
                self.data_rng.bit_generator.state = state["data_rng"]
        self.cfg, self.n_envs = algo_cfg, n_envs
        self.buffer = ReplayBuffer(algo_cfg.buffer_size, self.pool.obs_dim, self.pool.action_dim,
                                   n_envs, run_cfg.stream_seed("replay"))
        self.rng = run_cfg.stream("warmup")  # warm-up actions
        self.carry = saved_carry(ckpt, self.agent.initial_carry(n_envs))
        if ckpt is not None:
            self.buffer.load_state(ckpt.arrays("buffer/"), state["buffer_rng"])
            self.rng.bit_generator.state = state["loop_rng"]
        elif fresh:  # e.g. imitation seeding, once, before the first step
            self.agent = self.agent.pretrain(algo_cfg, run_cfg)
        if self.offline is not None:
            score = self.offline.normalized_score if self.offline.scored else None
        self.run = Session(run_cfg, algo_cfg,
                           ("normalized_score",) * (score is not None) + agent_cls.METRICS,
                           run_dir, state, score=score)
        self.k_updates = algo_cfg.updates_per_call(n_envs)
        self.stateful = bool(jax.tree_util.tree_leaves(self.carry))
        first = first_update_step(algo_cfg, n_envs)
        if first > run_cfg.steps:  # legal, but almost surely not what was meant
            print(f"note: the first gradient step comes at env step {first} (learning_starts "
                  f"{algo_cfg.learning_starts}, update_every {algo_cfg.update_every}), after this "
                  f"run's {run_cfg.steps} steps: it will not learn", file=sys.stderr)

    def checkpoint_parts(self):
        return ({**self.buffer.state(), **carry_arrays(self.carry)},
                {"pool": self.pool.state(), "loop_rng": self.rng.bit_generator.state,
                 "buffer_rng": self.buffer.rng.bit_generator.state,
                 "data_rng": self.data_rng.bit_generator.state,
                 **({"dataset_fingerprint": self.offline.fingerprint}
                    if self.offline is not None else {})})

    def sample(self):
        cfg = self.cfg
        batches = cfg.replay_batches(self.buffer, cfg.batch_size - self.n_offline,
                                     self.k_updates, self.pool.episode_limit)
        if self.offline is None:
            return batches
        extra = cfg.dataset_batches(self.offline, self.data_rng, self.n_offline, self.k_updates,
                                    self.pool.episode_limit)
        return concat([batches, extra])

    def exploring(self) -> bool:
        """Whether this step's actions are uniform warm-up actions, not the agent's."""
        return self.run.step < self.cfg.learning_starts and self.cfg.random_warmup

    def random_actions(self) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, (self.n_envs, self.pool.action_dim)).astype(np.float32)

    def collect(self, actions: np.ndarray) -> int:
        """Step the envs with ``actions``, store the transitions, reset the carry of the envs
        whose episode ended and move the step counter; returns the step before."""
        pool, run = self.pool, self.run
        next_obs, reward, terminated, truncated = pool.step(actions)
        self.buffer.add(pool.obs, actions, reward, terminated, truncated, next_obs)
        done = terminated | truncated
        finished = pool.advance(next_obs, done)
        if finished and self.stateful:
            self.carry = reset_carry(self.current_agent(), self.carry, done)
        run.finished(finished)
        prev = run.step
        run.step += self.n_envs
        return prev

    def update_due(self) -> bool:
        """Whether an update call follows the step just collected."""
        step, cfg = self.run.step, self.cfg
        return step >= cfg.learning_starts and (step // self.n_envs) % cfg.update_every == 0

    def iteration(self) -> None:
        if self.exploring():
            actions = self.random_actions()
            if self.stateful:  # the policy's state follows the episode it did not act in
                _, self.carry = self.agent.eval_actions(self.pool.obs, self.carry)
        else:
            actions, self.carry, self.agent = self.agent.sample_actions(self.pool.obs, self.carry)
            actions = np.asarray(actions)
        prev = self.collect(actions)
        metrics = None
        if self.update_due():
            self.agent, metrics = self.agent.update(self.sample())
        self.after(prev, metrics)

    def close(self) -> None:
        self.pool.close()


def first_update_step(cfg, n_envs: int) -> int:
    """The env step after which the first update call comes (see ``update_due``): the first
    multiple of n_envs * update_every that is at least learning_starts (and one env step)."""
    period = n_envs * cfg.update_every
    return max(-(-cfg.learning_starts // period), 1) * period


def train_offpolicy(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                    algo: str = "<algo>", agent=None, stop=None, score=None) -> dict:
    """``agent``: start from this agent (e.g. trained offline) instead of a fresh one."""
    return OffPolicyLoop(run_cfg, algo_cfg, agent_cls, run_dir, resume, algo, agent,
                         score)(stop)
