"""TD3 (Fujimoto et al. 2018): twin critics, target policy smoothing, delayed actor updates.

The agent is a deterministic actor-critic; with one critic, no target smoothing and no delay it
is DDPG (``contrl.agents.ddpg`` only changes the defaults).
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct
from flax.training.train_state import TrainState

from contrl.agents.base import (AgentBase, OffPolicyConfig, compiled_create, make_state,
                                scan_updates, td_loss, td_target)
from contrl.data.batch import Batch
from contrl.nets import (CriticEnsemble, DeterministicActor, deterministic_policy,
                         noisy_deterministic_policy, ou_deterministic_policy, polyak)


@dataclasses.dataclass
class TD3Config(OffPolicyConfig):
    """TD3 hyperparameters."""

    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to actions while collecting data."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise (0 disables smoothing)."""
    noise_clip: float = 0.5
    """Target smoothing noise is clipped to [-noise_clip, noise_clip]."""
    policy_delay: int = 2
    """Critic updates per actor (and target network) update."""
    noise_type: str = "gaussian"
    """Exploration noise: gaussian (independent, std exploration_noise) or ou
    (Ornstein-Uhlenbeck per env, sigma exploration_noise, dt 0.01, reset at episode ends)."""
    ou_theta: float = 0.15
    """Mean-reversion rate of the Ornstein-Uhlenbeck noise."""
    actor_q: str = "first"
    """What the actor maximizes: first (Q_1, as in the TD3 paper and SB3) or min (the minimum
    over the critics, as sbx 0.28 does)."""
    target_update: str = "delayed"
    """When the target networks move: delayed (with the actor, every policy_delay critic steps,
    as in the paper) or every_step (after every critic step, as sbx 0.28 does)."""

    def validate(self) -> None:
        super().validate()
        self._nonneg("exploration_noise", "policy_noise", "noise_clip", "ou_theta")
        self._positive("policy_delay")
        self._one_of("noise_type", ("gaussian", "ou"))
        self._one_of("actor_q", ("first", "min"))
        self._one_of("target_update", ("delayed", "every_step"))


def smoothed_target_action(mu_next, noise, noise_clip):
    """clip(mu'(s') + clip(noise, -c, c), -1, 1): TD3's target policy smoothing."""
    return jnp.clip(mu_next + jnp.clip(noise, -noise_clip, noise_clip), -1.0, 1.0)


def deterministic_actor_loss(q):
    """-E[Q_1(s, mu(s))]: the actor follows the first critic, as in TD3."""
    return -jnp.mean(q[0])


class TD3(AgentBase, struct.PyTreeNode):
    """Immutable deterministic actor-critic; ``update`` does K gradient steps in one call."""

    METRICS = ("critic_loss", "q_mean", "actor_loss")

    actor: TrainState
    critic: TrainState
    target_actor: dict
    target_critic: dict
    key: jax.Array
    critic_steps: jax.Array  # critic updates so far; the actor updates every policy_delay-th
    actor_loss: jax.Array  # the latest actor loss (the actor does not update every step)
    action_dim: int = struct.field(pytree_node=False)
    tau: float = struct.field(pytree_node=False)
    exploration_noise: float = struct.field(pytree_node=False)
    policy_noise: float = struct.field(pytree_node=False)
    noise_clip: float = struct.field(pytree_node=False)
    policy_delay: int = struct.field(pytree_node=False)
    noise_type: str = struct.field(pytree_node=False)
    ou_theta: float = struct.field(pytree_node=False)
    actor_q: str = struct.field(pytree_node=False)
    target_update: str = struct.field(pytree_node=False)
    first_critic_fn: Callable = struct.field(pytree_node=False)  # Q_1 alone, for the actor

    @classmethod
    def create(cls, cfg: TD3Config, obs_dim: int, action_dim: int, seed: int,
               num_envs: int = 1) -> "TD3":
        return compiled_create(cls._build, cfg, obs_dim, action_dim, seed)

    @classmethod
    def _build(cls, cfg: TD3Config, obs_dim: int, action_dim: int, seed) -> "TD3":
        key, k_actor, k_critic = jax.random.split(jax.random.PRNGKey(seed), 3)
        obs = jnp.zeros((1, obs_dim), jnp.float32)
        act = jnp.zeros((1, action_dim), jnp.float32)
        actor_net = DeterministicActor(tuple(cfg.hidden), action_dim, weight_init=cfg.weight_init)
        critic_net = CriticEnsemble(tuple(cfg.hidden), cfg.n_critics, cfg.critic_layer_norm, cfg.weight_init)
        actor_params = actor_net.init(k_actor, obs)
        critic_params = critic_net.init(k_critic, obs, act)
        first_critic = CriticEnsemble(tuple(cfg.hidden), 1, cfg.critic_layer_norm, cfg.weight_init)
        copy = partial(jax.tree_util.tree_map, jnp.copy)
        return cls(
            actor=make_state(actor_net, actor_params, cfg.lr),
            critic=make_state(critic_net, critic_params, cfg.lr),
            target_actor=copy(actor_params),
            target_critic=copy(critic_params),
            key=key,
            critic_steps=jnp.zeros((), jnp.int32),
            actor_loss=jnp.zeros((), jnp.float32),
            action_dim=action_dim,
            tau=cfg.tau,
            exploration_noise=cfg.exploration_noise,
            policy_noise=cfg.policy_noise,
            noise_clip=cfg.noise_clip,
            policy_delay=cfg.policy_delay,
            noise_type=cfg.noise_type,
            ou_theta=cfg.ou_theta,
            actor_q=cfg.actor_q,
            target_update=cfg.target_update,
            first_critic_fn=first_critic.apply,
        )

    def initial_carry(self, num_envs: int):
        """Ornstein-Uhlenbeck noise carries its state per env (restarted at zero at each
        episode's start); Gaussian noise carries nothing."""
        if self.noise_type == "ou":
            return jnp.zeros((num_envs, self.action_dim), jnp.float32)
        return ()

    def sample_actions(self, obs: jax.Array, carry=()):
        if self.noise_type == "ou":
            action, key, carry = ou_deterministic_policy(
                self.actor.apply_fn, self.actor.params, self.key, obs, carry,
                self.exploration_noise, self.ou_theta)
            return action, carry, self.replace(key=key)
        action, key = noisy_deterministic_policy(self.actor.apply_fn, self.actor.params, self.key,
                                                 obs, self.exploration_noise)
        return action, carry, self.replace(key=key)

    def eval_actions(self, obs: jax.Array, carry=()):
        return deterministic_policy(self.actor.apply_fn, self.actor.params, obs), carry

    def _critic_step(self, batch: Batch, key: jax.Array):
        mu_next = self.actor.apply_fn(self.target_actor, batch.next_obs)
        noise = self.policy_noise * jax.random.normal(key, mu_next.shape)
        next_action = smoothed_target_action(mu_next, noise, self.noise_clip)
        next_q = self.critic.apply_fn(self.target_critic, batch.next_obs, next_action)
        target = jax.lax.stop_gradient(td_target(batch.reward, batch.discount, next_q))

        def loss_fn(params):
            q = self.critic.apply_fn(params, batch.obs, batch.action)
            return td_loss(q, target), q.mean()

        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(self.critic.params)
        return self.critic.apply_gradients(grads=grads), {"critic_loss": loss, "q_mean": q_mean}

    def actor_objective(self, q, pi, batch: Batch):
        """The actor's loss given the critic value it climbs at (s, pi(s)) (shape (1, B); see
        ``_actor_q``) and its actions pi(s)."""
        return deterministic_actor_loss(q)

    def _actor_q(self, obs, pi):
        """The critic value the actor climbs, shape (1, B): Q_1 by default, or min over critics."""
        if self.actor_q == "min":
            return jnp.min(self.critic.apply_fn(self.critic.params, obs, pi), axis=0, keepdims=True)
        # Only Q_1: evaluate a one-member view of the ensemble rather than the whole vmapped
        # ensemble (whose unused members XLA cannot prune from the batched matmul).
        q1_params = jax.tree_util.tree_map(lambda p: p[:1], self.critic.params)
        return self.first_critic_fn(q1_params, obs, pi)

    def _move_targets(self) -> "TD3":
        return self.replace(target_actor=polyak(self.target_actor, self.actor.params, self.tau),
                            target_critic=polyak(self.target_critic, self.critic.params, self.tau))

    def _actor_step(self, batch: Batch) -> "TD3":
        def loss_fn(params):
            pi = self.actor.apply_fn(params, batch.obs)
            return self.actor_objective(self._actor_q(batch.obs, pi), pi, batch)

        loss, grads = jax.value_and_grad(loss_fn)(self.actor.params)
        agent = self.replace(actor=self.actor.apply_gradients(grads=grads), actor_loss=loss)
        return agent._move_targets() if self.target_update == "delayed" else agent

    def _update_step(self, batch: Batch):
        key, k_noise = jax.random.split(self.key)
        critic, info = self._critic_step(batch, k_noise)
        agent = self.replace(critic=critic, key=key, critic_steps=self.critic_steps + 1)
        if self.target_update == "every_step":
            agent = agent._move_targets()
        agent = jax.lax.cond(agent.critic_steps % self.policy_delay == 0,
                             lambda a: a._actor_step(batch), lambda a: a, agent)
        info["actor_loss"] = agent.actor_loss
        return agent, info

    @partial(jax.jit, donate_argnums=0)
    def update(self, batches: Batch) -> tuple["TD3", dict]:
        """K gradient steps, one per leading slice of ``batches``."""
        return scan_updates(lambda a, b: a._update_step(b), self, batches)
