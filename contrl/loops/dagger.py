"""The DAgger loop: each round rolls out the mixture policy (the expert's action with
probability beta, the learner's otherwise, decided per step and env), labels every visited
state with the expert's action, adds it to the aggregated data, and trains the learner on all
of it. Steps count expert labels; a checkpoint after each round holds the aggregated data and
both policies' states, so a run resumes exactly."""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from contrl.agents.dagger import beta
from contrl.data import Batch
from contrl.errors import ContrlError
from contrl.loops.common import Loop, Session, saved_carry, start
from contrl.policy import carry_arrays, reset_carry
from contrl.rundir import load_agent


class DAggerLoop(Loop):
    def __init__(self, run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                 algo: str = "dagger"):
        super().__init__(run_dir, algo)
        self.expert, expert_run, _, _ = load_agent(algo_cfg.expert, "best")
        if expert_run.env != run_cfg.env:
            raise ContrlError(f"the expert {algo_cfg.expert} was trained on {expert_run.env}, "
                              f"not {run_cfg.env}")
        differ = {k: v for k, v in expert_run.env_kwargs.items() if run_cfg.env_kwargs[k] != v}
        if differ:  # the expert labels the learner's observations: they must be its own kind
            given = ", ".join(f"{k} {v}" for k, v in differ.items())
            raise ContrlError(f"the expert {algo_cfg.expert} sees observations made with {given}; "
                              "give this run the same options")
        self.pool, self.agent, ckpt, state = start(run_cfg, algo_cfg, agent_cls, run_dir, resume)
        self.cfg = algo_cfg
        self.rng = run_cfg.stream("dagger")
        self.obs_data = np.zeros((0, self.pool.obs_dim), np.float32)
        self.act_data = np.zeros((0, self.pool.action_dim), np.float32)
        n = self.pool.n
        self.expert_carry = saved_carry(ckpt, self.expert.initial_carry(n), "expert_carry/")
        self.carry = saved_carry(ckpt, self.agent.initial_carry(n))
        if ckpt is not None:
            self.rng.bit_generator.state = state["rng"]
            arrays = ckpt.arrays("data/")
            self.obs_data, self.act_data = arrays["data/obs"], arrays["data/actions"]
        self.run = Session(run_cfg, algo_cfg, ("beta",) + agent_cls.METRICS, run_dir, state)

    def checkpoint_parts(self):
        return ({"data/obs": self.obs_data, "data/actions": self.act_data,
                 **carry_arrays(self.carry), **carry_arrays(self.expert_carry, "expert_carry/")},
                {"rng": self.rng.bit_generator.state, "pool": self.pool.state()})

    def rollout(self, b: float, per_round: int) -> tuple[np.ndarray, np.ndarray]:
        """``per_round`` states visited by the mixture policy, and the expert's labels."""
        pool, n = self.pool, self.pool.n
        learner_acts = b < 1 or bool(jax.tree_util.tree_leaves(self.carry))
        new_obs, new_act = [], []
        for _ in range(-(-per_round // n)):
            obs = pool.obs.copy()
            label, self.expert_carry = self.expert.eval_actions(obs, self.expert_carry)
            label = np.asarray(label, np.float32)
            mine = label
            if learner_acts:
                mine, self.carry = self.agent.eval_actions(obs, self.carry)
                mine = np.asarray(mine, np.float32)
            act = np.where(self.rng.random((n, 1)) < b, label, mine)
            new_obs.append(obs)
            new_act.append(label)
            next_obs, _, term, trunc = pool.step(act)
            finished = pool.advance(next_obs, term | trunc)
            if finished:
                self.expert_carry = reset_carry(self.expert, self.expert_carry, term | trunc)
                self.carry = reset_carry(self.agent, self.carry, term | trunc)
            self.run.finished(finished)
        return np.concatenate(new_obs)[:per_round], np.concatenate(new_act)[:per_round]

    def iteration(self) -> None:
        cfg, run = self.cfg, self.run
        b = beta(cfg.beta_schedule, cfg.beta_decay, run.step // cfg.steps_per_round)
        per_round = min(cfg.steps_per_round, run.cfg.steps - run.step)  # steps asked, done
        new_obs, new_act = self.rollout(b, per_round)
        self.obs_data = np.concatenate([self.obs_data, new_obs])
        self.act_data = np.concatenate([self.act_data, new_act])
        if cfg.normalize_obs:
            # refitted on everything labelled so far: statistics of the first round alone put
            # the learner's later states far outside them (Ant: features constant over one
            # expert episode, std floored at 1e-3, read 1000 standard deviations out later)
            self.agent = self.agent.fit_normalizer(self.obs_data)
        k = cfg.update_every
        metrics = {}
        for _ in range(max(1, cfg.updates_per_round // k)):
            i = self.rng.integers(0, len(self.obs_data), (k, cfg.batch_size))
            dummy = np.zeros(i.shape, np.float32)
            self.agent, metrics = self.agent.update(
                Batch(self.obs_data[i], self.act_data[i], dummy, dummy, self.obs_data[i]))
        prev = run.step
        run.step += per_round
        self.after(prev, {**metrics, "beta": b})

    def close(self) -> None:
        self.pool.close()


def train_dagger(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                 algo: str = "dagger") -> dict:
    return DAggerLoop(run_cfg, algo_cfg, agent_cls, run_dir, resume, algo)()
