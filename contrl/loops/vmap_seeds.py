"""Several seeds of one off-policy configuration trained in one process, as one vmapped agent.

The seeds' agents are stacked on a leading seed axis; acting and the K-step update are each
one compiled call ``jax.vmap``ped over that axis. Everything else stays per seed, exactly as a
single run of that seed has it: its env pool, replay buffer, warm-up, replay and dataset
generators, its Session (progress.csv, evaluations, best.ckpt, eval.json, TensorBoard) and its
latest.ckpt, holding that seed's slice of the agent. So every seed's directory is an ordinary
run directory: ``contrl eval``, ``report``, ``video`` and ``--resume`` (alone, or the seeds
together again) work on it. The seeds step in lockstep: one step counter, update calls and
checkpoints at the same steps.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from contrl.config import ConfigError
from contrl.errors import ContrlError
from contrl.loops.common import Loop
from contrl.loops.offpolicy import OffPolicyLoop

VMAPPABLE = ("sac", "td3", "ddpg")
"""Algorithms whose seeds can be trained as one vmapped agent."""


def check_vmappable(algo: str, run_cfg, algo_cfg) -> None:
    """Refuse, in one line, a configuration whose seeds cannot be trained as one group."""
    if algo not in VMAPPABLE:
        raise ConfigError(f"seeds trained together (vmapped) must be {', '.join(VMAPPABLE)} "
                          f"runs, not {algo}; train its seeds as separate runs")
    if algo_cfg.offline_ratio > 0:
        raise ConfigError("seeds trained together (vmapped) cannot use offline_ratio (a "
                          "dataset per seed); train them as separate runs")
    if run_cfg.stop_at_return is not None:
        raise ConfigError("seeds trained together (vmapped) step in lockstep, so one cannot "
                          "stop early: drop stop_at_return or train them as separate runs")


def stack(trees: list, xp=jnp):
    """Pytrees of one structure as one, their leaves stacked on a new leading axis (by
    ``xp.stack``: on the device with jax.numpy, in host memory with numpy)."""
    return jax.tree_util.tree_map(lambda *xs: xp.stack(xs), *trees)


def member(tree, i: int):
    """Slice ``i`` of a stacked pytree."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


@partial(jax.jit, donate_argnums=0)  # donated: the agent's unchanged leaves are not copied
def _sample_actions(agents, obs, carry):
    return jax.vmap(lambda a, o, c: a.sample_actions(o, c))(agents, obs, carry)


@jax.jit
def _eval_actions(agents, obs, carry):
    return jax.vmap(lambda a, o, c: a.eval_actions(o, c))(agents, obs, carry)


@partial(jax.jit, donate_argnums=0)
def _update(agents, batches):
    return jax.vmap(lambda a, b: a.update(b))(agents, batches)


class Member(OffPolicyLoop):
    """One seed of a group: an off-policy loop (its envs, buffer, generators, session and
    checkpoints) whose agent is the group's slice ``index``."""

    def __init__(self, group: "SeedGroup", index: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.group, self.index = group, index

    def current_agent(self):
        return member(self.group.agent, self.index)


class GroupSession:
    """The members' sessions, seen by the Loop frame as one (they share the step counter)."""

    def __init__(self, sessions: list):
        self.sessions = sessions

    @property
    def step(self) -> int:
        return self.sessions[0].step

    def done(self) -> bool:
        return all(s.done() for s in self.sessions)

    def close(self) -> None:
        for s in self.sessions:
            s.close()

    def summary(self, interrupted: bool) -> dict:
        runs = [s.summary(interrupted) for s in self.sessions]
        return {**runs[0], "runs": runs}


class SeedGroup(Loop):
    """The off-policy loop over ``runs`` ((RunConfig, run directory) per seed, configs alike
    but for the seed) with one stacked agent."""

    def __init__(self, runs: list, algo_cfg, agent_cls, resume: bool = False,
                 algo: str = "<algo>"):
        super().__init__(runs[0][1], algo)
        self.members: list[Member] = []
        try:
            for i, (run_cfg, run_dir) in enumerate(runs):
                self.members.append(Member(self, i, run_cfg, algo_cfg, agent_cls, Path(run_dir),
                                           resume, algo))
        except BaseException:
            self._abort()
            raise
        steps = {m.run_dir.name: m.run.step for m in self.members}
        if len(set(steps.values())) > 1:
            self._abort()
            raise ContrlError(f"the runs to resume together are at different steps ({steps}); "
                              "resume them one at a time")
        self.agent = stack([m.agent for m in self.members])
        for m in self.members:
            m.agent = None  # the group holds it: member.current_agent() slices it out
        self.stateful = self.members[0].stateful
        self.run = GroupSession([m.run for m in self.members])

    def _abort(self) -> None:
        """Close what the members set up so far (a failed start)."""
        for m in self.members:
            m.run.close()
            m.close()

    def _carry(self):
        return stack([m.carry for m in self.members], np)

    def _set_carry(self, carry) -> None:
        for i, m in enumerate(self.members):
            m.carry = jax.tree_util.tree_map(lambda c: np.asarray(c[i]), carry)

    def iteration(self) -> None:
        ms = self.members
        obs = np.stack([m.pool.obs for m in ms])
        if ms[0].exploring():
            actions = np.stack([m.random_actions() for m in ms])
            if self.stateful:  # as OffPolicyLoop: the state follows the episode
                self._set_carry(_eval_actions(self.agent, obs, self._carry())[1])
        else:
            actions, carry, self.agent = _sample_actions(self.agent, obs, self._carry())
            actions = np.asarray(actions)
            self._set_carry(carry)
        prevs = [m.collect(a) for m, a in zip(ms, actions)]
        metrics = None
        if ms[0].update_due():
            batches = stack([m.sample() for m in ms], np)
            self.agent, metrics = _update(self.agent, batches)
            metrics = jax.device_get(metrics)
        for i, (m, prev) in enumerate(zip(ms, prevs)):
            m.after(prev, None if metrics is None else {k: v[i] for k, v in metrics.items()})

    def checkpoint(self) -> None:
        for m in self.members:
            m.checkpoint()

    def resume_command(self) -> str:
        return f"contrl train {self.algo} --resume " + " ".join(str(m.run_dir)
                                                               for m in self.members)

    def close(self) -> None:
        for m in self.members:
            m.close()
