"""What acts in an environment: the policy interface with a per-env carried state.

A policy acts on a batch of observations, one row per env, and carries a state from step to
step for each env: a recurrent policy's hidden state, correlated exploration noise, a step
counter. The carry is a pytree whose leaves have a leading ``num_envs`` axis; a feed-forward
policy's carry is the empty tuple. At an env's episode end, that env's rows of the carry go
back to their initial values (``reset_carry``); every consumer (training loops, evaluation,
dataset collection, DAgger) does this, and the loops save the carry in their checkpoints so a
run interrupted mid-episode resumes exactly.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

from contrl.errors import ContrlError

Carry = Any  # a pytree of arrays with a leading num_envs axis; () for stateless policies


@runtime_checkable
class Policy(Protocol):
    """Deterministic acting, as evaluation and data collection use it."""

    def initial_carry(self, num_envs: int) -> Carry:
        """The carry at the start of an episode, for ``num_envs`` envs."""
        ...

    def eval_actions(self, obs, carry: Carry) -> tuple[Any, Carry]:
        """Actions in [-1, 1] for a batch of observations, and the next carry."""
        ...


def reset_carry(policy: Policy, carry: Carry, done) -> Carry:
    """``carry`` with the rows of the envs where ``done`` is true back at their initial value."""
    if not jax.tree_util.tree_leaves(carry):
        return carry
    done = np.asarray(done, bool)
    initial = policy.initial_carry(len(done))

    def pick(c, c0):
        mask = done.reshape((-1,) + (1,) * (np.ndim(c) - 1))
        return np.where(mask, np.asarray(c0), np.asarray(c))
    return jax.tree_util.tree_map(pick, carry, initial)


def carry_arrays(carry: Carry, prefix: str = "carry/") -> dict[str, np.ndarray]:
    """The carry's leaves as named arrays, for a checkpoint."""
    return {f"{prefix}{i}": np.asarray(leaf)
            for i, leaf in enumerate(jax.tree_util.tree_leaves(carry))}


def restore_carry(arrays: dict, template: Carry, prefix: str = "carry/") -> Carry:
    """The carry saved by ``carry_arrays``, in the structure (and dtypes) of ``template``."""
    leaves, treedef = jax.tree_util.tree_flatten(template)
    saved = [arrays.get(f"{prefix}{i}") for i in range(len(leaves))]
    if any(s is None or np.shape(s) != np.shape(t) for s, t in zip(saved, leaves)):
        raise ValueError("the saved policy state does not match this policy")
    return jax.tree_util.tree_unflatten(
        treedef, [np.asarray(s, np.asarray(t).dtype) for s, t in zip(saved, leaves)])


class Stateless:
    """Mixin for policies that carry nothing from step to step."""

    def initial_carry(self, num_envs: int) -> Carry:
        return ()


class RandomPolicy(Stateless):
    """Uniform random actions in [-1, 1]^action_dim from a seeded generator."""

    def __init__(self, action_dim: int, seed: int):
        self.action_dim = action_dim
        self.rng = np.random.default_rng(seed)

    def eval_actions(self, obs, carry: Carry):
        return self.rng.uniform(-1.0, 1.0, (len(obs), self.action_dim)).astype(np.float32), carry


class NoisyPolicy:
    """A policy's deterministic action plus Gaussian noise of std ``noise``, clipped to
    [-1, 1]; the wrapped policy's carry passes through."""

    def __init__(self, policy: Policy, noise: float, seed: int):
        self.policy = policy
        self.noise = noise
        self.rng = np.random.default_rng(seed)

    def initial_carry(self, num_envs: int) -> Carry:
        return self.policy.initial_carry(num_envs)

    def eval_actions(self, obs, carry: Carry):
        a, carry = self.policy.eval_actions(obs, carry)
        a = np.asarray(a)
        return np.clip(a + self.noise * self.rng.standard_normal(a.shape), -1.0, 1.0
                       ).astype(np.float32), carry


class SampledPolicy:
    """An agent's actions drawn from its own acting distribution (``sample_actions``: SAC's
    tanh-Gaussian, TD3's exploration noise), as D4RL drew its MuJoCo datasets' actions from
    the SAC policy. The draws are seeded by ``seed`` (not by the key the agent was saved with);
    the agent's carry passes through."""

    def __init__(self, agent, seed: int):
        if not hasattr(agent, "key"):  # the agents that sample (SAC, TD3, ...) carry a PRNG key
            raise ContrlError(f"{type(agent).__name__} has no action distribution to sample "
                              "from; use its deterministic actions, with --noise if wanted")
        self.agent = agent.replace(key=jax.random.PRNGKey(seed))

    def initial_carry(self, num_envs: int) -> Carry:
        return self.agent.initial_carry(num_envs)

    def eval_actions(self, obs, carry: Carry):
        """A draw, clipped to [-1, 1] as the env gets it in training (an on-policy agent's
        Gaussian draws are not bounded)."""
        action, carry, self.agent = self.agent.sample_actions(obs, carry)
        return np.clip(np.asarray(action, np.float32), -1.0, 1.0), carry
