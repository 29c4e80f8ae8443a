"""Soft Actor-Critic (Haarnoja et al. 2018, with automatic entropy tuning)."""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.training.train_state import TrainState

from contrl.agents.base import (AgentBase, OffPolicyConfig, compiled_create, make_state,
                                scan_updates, td_loss, td_target)
from contrl.data.batch import Batch
from contrl.nets import (CriticEnsemble, TanhGaussianActor, polyak, sample_tanh_gaussian_policy,
                         tanh_gaussian_mode, tanh_gaussian_sample)


@dataclasses.dataclass
class SACConfig(OffPolicyConfig):
    """Soft Actor-Critic hyperparameters."""

    RETIRED = ("seed_from", "seed_with_dataset", "pretrain_steps", "bc_weight", "bc_decay_steps",
               "bc_normalize_q", "seed_log_std", "seed_actor_warmup")  # now seeded_sac's

    init_alpha: float = 1.0
    """Initial entropy coefficient."""
    autotune_alpha: bool = True
    """Tune the entropy coefficient towards the target entropy (else keep init_alpha)."""
    target_entropy: float | None = None
    """Target policy entropy; default -|A|."""
    backup_entropy: bool = True
    """Include the entropy term in the TD target."""

    def validate(self) -> None:
        super().validate()
        self._positive("init_alpha")

    @classmethod
    def resume_blocker(cls, saved: dict) -> str | None:
        if saved.get("seed_from") or (saved.get("dataset") and saved.get("seed_with_dataset")):
            return ("this sac run was imitation-seeded by an older contrl; seeding is now the "
                    "seeded_sac algorithm, so it can be evaluated but not resumed")
        return None


def soft_td_target(reward, discount, next_q, next_logp, alpha):
    """r + discount * (min_i Q_i(s', a') - alpha * log pi(a'|s')); next_q: (n, B)."""
    return td_target(reward, discount, next_q - alpha * next_logp)


def actor_loss(logp, q, alpha):
    """E[alpha * log pi(a|s) - min_i Q_i(s, a)] with a ~ pi(.|s); q: (n, B)."""
    return jnp.mean(alpha * logp - q.min(0))


def temperature_loss(log_alpha, entropy, target_entropy):
    """Gradient descent on log(alpha) raises alpha while the entropy is below target."""
    return log_alpha * (entropy - target_entropy)


def sac_fields(cfg, obs_dim: int, action_dim: int, seed, actor_lr: float,
               actor_warmup: int = 0) -> dict:
    """The fields of a fresh SAC-style agent (tanh-Gaussian actor, critic ensemble and its
    target, entropy coefficient, key, counters) from a config with SAC's fields (hidden,
    n_critics, critic_layer_norm, weight_init, lr, tau, init_alpha, autotune_alpha,
    target_entropy, backup_entropy); the actor learns at ``actor_lr``."""
    key, k_actor, k_critic = jax.random.split(jax.random.PRNGKey(seed), 3)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    act = jnp.zeros((1, action_dim), jnp.float32)
    actor_net = TanhGaussianActor(tuple(cfg.hidden), action_dim, weight_init=cfg.weight_init)
    critic_net = CriticEnsemble(tuple(cfg.hidden), cfg.n_critics, cfg.critic_layer_norm,
                                cfg.weight_init)
    critic_params = critic_net.init(k_critic, obs, act)
    log_alpha = {"log_alpha": jnp.full((), np.log(cfg.init_alpha), jnp.float32)}
    return dict(
        actor=make_state(actor_net, actor_net.init(k_actor, obs), actor_lr, warmup=actor_warmup),
        critic=make_state(critic_net, critic_params, cfg.lr),
        target_critic=jax.tree_util.tree_map(jnp.copy, critic_params),
        log_alpha=make_state(None, log_alpha, cfg.lr),
        key=key,
        grad_steps=jnp.zeros((), jnp.int32),
        tau=cfg.tau,
        target_entropy=(-float(action_dim) if cfg.target_entropy is None
                        else float(cfg.target_entropy)),
        autotune_alpha=cfg.autotune_alpha,
        backup_entropy=cfg.backup_entropy,
    )


class SAC(AgentBase, struct.PyTreeNode):
    """Immutable SAC agent. ``update`` performs K gradient steps in one jitted call."""

    METRICS = ("critic_loss", "q_mean", "actor_loss", "entropy", "alpha", "alpha_loss")

    actor: TrainState
    critic: TrainState
    target_critic: dict
    log_alpha: TrainState
    key: jax.Array
    grad_steps: jax.Array
    tau: float = struct.field(pytree_node=False)
    target_entropy: float = struct.field(pytree_node=False)
    autotune_alpha: bool = struct.field(pytree_node=False)
    backup_entropy: bool = struct.field(pytree_node=False)

    @classmethod
    def create(cls, cfg: SACConfig, obs_dim: int, action_dim: int, seed: int,
               num_envs: int = 1) -> "SAC":
        return compiled_create(cls._build, cfg, obs_dim, action_dim, seed)

    @classmethod
    def _build(cls, cfg: SACConfig, obs_dim: int, action_dim: int, seed: int) -> "SAC":
        return cls(**sac_fields(cfg, obs_dim, action_dim, seed, cfg.lr))

    # ----------------------------------------------------------------- acting
    def sample_actions(self, obs: jax.Array, carry=()):
        action, key = sample_tanh_gaussian_policy(self.actor.apply_fn, self.actor.params,
                                                  self.key, obs)
        return action, carry, self.replace(key=key)

    def eval_actions(self, obs: jax.Array, carry=()):
        return tanh_gaussian_mode(self.actor.apply_fn, self.actor.params, obs), carry

    # --------------------------------------------------------------- learning
    @property
    def alpha(self) -> jax.Array:
        return jnp.exp(self.log_alpha.params["log_alpha"])

    def _critic_step(self, batch: Batch, key: jax.Array):
        """One gradient step of the critics; returns the agent holding them, and metrics."""
        mean, log_std = self.actor.apply_fn(self.actor.params, batch.next_obs)
        next_action, next_logp = tanh_gaussian_sample(mean, log_std, key)
        next_q = self.critic.apply_fn(self.target_critic, batch.next_obs, next_action)
        alpha = self.alpha if self.backup_entropy else 0.0
        target = jax.lax.stop_gradient(
            soft_td_target(batch.reward, batch.discount, next_q, next_logp, alpha))

        def loss_fn(params):
            q = self.critic.apply_fn(params, batch.obs, batch.action)
            return td_loss(q, target), q.mean()

        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(self.critic.params)
        critic = self.critic.apply_gradients(grads=grads)
        return self.replace(critic=critic), {"critic_loss": loss, "q_mean": q_mean}

    def _actor_loss(self, params, batch: Batch, key: jax.Array):
        """The actor's loss at ``params`` and the log-probabilities of its sampled actions."""
        mean, log_std = self.actor.apply_fn(params, batch.obs)
        action, logp = tanh_gaussian_sample(mean, log_std, key)
        q = self.critic.apply_fn(self.critic.params, batch.obs, action)
        return actor_loss(logp, q, self.alpha), logp

    def _actor_step(self, batch: Batch, key: jax.Array):
        (loss, logp), grads = jax.value_and_grad(self._actor_loss, has_aux=True)(
            self.actor.params, batch, key)
        actor = self.actor.apply_gradients(grads=grads)
        return actor, loss, -jnp.mean(logp)

    def _alpha_step(self, entropy: jax.Array):
        def loss_fn(p):
            return temperature_loss(p["log_alpha"], entropy, self.target_entropy)

        loss, grads = jax.value_and_grad(loss_fn)(self.log_alpha.params)
        return self.log_alpha.apply_gradients(grads=grads), loss

    def _update_step(self, batch: Batch):
        key, k_critic, k_actor = jax.random.split(self.key, 3)
        agent, info = self._critic_step(batch, k_critic)
        agent = agent.replace(key=key)
        actor, pi_loss, entropy = agent._actor_step(batch, k_actor)
        agent = agent.replace(
            actor=actor, target_critic=polyak(agent.target_critic, agent.critic.params, self.tau),
            grad_steps=agent.grad_steps + 1,
        )
        if self.autotune_alpha:
            log_alpha, alpha_loss = agent._alpha_step(jax.lax.stop_gradient(entropy))
            agent = agent.replace(log_alpha=log_alpha)
            info["alpha_loss"] = alpha_loss
        info.update(actor_loss=pi_loss, entropy=entropy, alpha=agent.alpha)
        return agent, info

    @partial(jax.jit, donate_argnums=0)
    def update(self, batches: Batch) -> tuple["SAC", dict]:
        """K gradient steps, one per leading slice of ``batches``."""
        return scan_updates(lambda a, b: a._update_step(b), self, batches)
