"""Conservative Q-Learning (Kumar et al. 2020), on SAC.

Each critic's TD loss gets a penalty that pushes Q down on actions the policy (and a uniform
proposal) would pick and up on dataset actions:

    penalty_i = E_s[ T * logsumexp(Q_i(s, a~) / T) - Q_i(s, a_data) ],

with the logsumexp over random, current-policy and next-policy actions, importance-weighted
by their densities (CQL(H)). The weight is fixed (``cql_alpha``) or tuned by dual gradient
descent so that the penalty stays near ``lagrange_gap``. The TD target leaves out the entropy
bonus and bootstraps from the policy's mean action at s' by default: on noise-free expert data
the penalty makes Q sharply peaked at the dataset actions, and the gap between that peak and
Q at a sampled action, compounded over 1 / (1 - gamma) steps, drove Q down without bound.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.training.train_state import TrainState

from contrl.agents.base import make_state
from contrl.agents.offline import DataNormalized, DataStats, OfflineConfig
from contrl.agents.sac import SAC, sac_fields, soft_td_target
from contrl.data.batch import Batch
from contrl.nets import tanh_gaussian_log_prob, tanh_gaussian_mode, tanh_gaussian_sample


@dataclasses.dataclass
class CQLConfig(OfflineConfig):
    """CQL hyperparameters (CORL's locomotion setting except actor_lr, deterministic_backup).

    CORL's own values are ``--actor-lr 3e-5 --no-deterministic-backup``."""

    hidden: tuple[int, ...] = (256, 256, 256)
    """Hidden layer widths of the actor and of each critic."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor (lr is the critics' and alpha's)."""
    init_alpha: float = 1.0
    """Initial entropy coefficient."""
    autotune_alpha: bool = True
    """Tune the entropy coefficient towards the target entropy (else keep init_alpha)."""
    target_entropy: float | None = None
    """Target policy entropy; default -|A|."""
    backup_entropy: bool = False
    """Include the entropy term in the TD target."""
    cql_alpha: float = 10.0
    """Weight of the conservative penalty (the initial multiplier with lagrange)."""
    n_actions: int = 10
    """Sampled actions per state for each of the random, current and next-policy terms."""
    temperature: float = 1.0
    """Temperature of the logsumexp."""
    importance_sample: bool = True
    """Weight sampled actions by their inverse densities (CQL(H)); off: plain logsumexp."""
    lagrange: bool = False
    """Tune the penalty weight so that the penalty approaches lagrange_gap."""
    lagrange_gap: float = 5.0
    """Target value of the penalty when lagrange is on."""
    deterministic_backup: bool = True
    """Bootstrap from Q(s', tanh(mean of pi(.|s'))) instead of Q at a sampled action (as
    d3rlpy does). With near-deterministic (e.g. noise-free expert) data the penalty makes Q
    sharply peaked at the dataset actions, and sampled actions fall off that peak."""
    penalty_clip_min: float = float("-inf")
    """Floor of each sample's logsumexp - Q(s, a_data), in Q units: once dataset actions
    dominate by this margin the penalty stops pushing (CORL's cql_clip_diff_min; -inf:
    never; presets/cql.toml sets it for dm_control's walker, whose rewards lie in [0, 1])."""
    bc_steps: int = 0
    """First gradient steps in which the actor imitates the dataset (maximizes
    log pi(a_data|s) - alpha * log pi) instead of Q, while the critics already learn;
    the CQL paper's policy_eval_start."""

    def validate(self) -> None:
        super().validate()
        self._positive("init_alpha", "n_actions", "temperature")
        self._in_range("actor_lr", 0.0, 1.0, low_open=True)
        self._nonneg("cql_alpha", "bc_steps")


def cql_penalty(q_data, q_rand, q_pi, logp_pi, q_next, logp_next, action_dim: int,
                temperature: float = 1.0, importance_sample: bool = True,
                clip_min: float = -np.inf):
    """Per-critic conservative penalty, shape (n,).

    q_data: (n, B) at dataset actions; q_rand, q_pi, q_next: (n, B, N) at uniform actions,
    actions from pi(.|s) and from pi(.|s') (all evaluated at s); logp_pi, logp_next: (B, N).
    """
    if importance_sample:
        log_uniform = action_dim * np.log(0.5)  # density of U[-1, 1]^d
        cat = jnp.concatenate([q_rand - log_uniform, q_pi - logp_pi, q_next - logp_next], -1)
    else:
        cat = jnp.concatenate([q_rand, q_data[..., None], q_pi, q_next], -1)
    lse = temperature * jax.nn.logsumexp(cat / temperature, axis=-1)
    # per-sample differences below clip_min give no gradient: the push stops there
    return jnp.mean(jnp.maximum(lse - q_data, clip_min), axis=-1)


def cql_bc_loss(logp_pi, logp_data, alpha):
    """Actor loss of the imitation warm-up: keep the entropy bonus, replace Q by log pi(a_data)."""
    return jnp.mean(alpha * logp_pi) - jnp.mean(logp_data)


class CQL(DataNormalized, SAC):
    """SAC with the conservative critic penalty and dataset statistics (``stats``)."""

    METRICS = ("critic_loss", "cql_penalty", "q_mean", "q_min", "q_max", "q_rand", "actor_loss",
               "entropy", "alpha", "cql_weight")

    stats: DataStats = None
    log_alpha_prime: TrainState = None
    cql_alpha: float = struct.field(pytree_node=False, default=10.0)
    n_actions: int = struct.field(pytree_node=False, default=10)
    temperature: float = struct.field(pytree_node=False, default=1.0)
    importance_sample: bool = struct.field(pytree_node=False, default=True)
    lagrange: bool = struct.field(pytree_node=False, default=False)
    lagrange_gap: float = struct.field(pytree_node=False, default=5.0)
    bc_steps: int = struct.field(pytree_node=False, default=0)
    penalty_clip_min: float = struct.field(pytree_node=False, default=float("-inf"))
    deterministic_backup: bool = struct.field(pytree_node=False, default=True)

    @classmethod
    def _build(cls, cfg: CQLConfig, obs_dim: int, action_dim: int, seed) -> "CQL":
        log_alpha_prime = {"log_alpha": jnp.full((), np.log(max(cfg.cql_alpha, 1e-8)), jnp.float32)}
        return cls(
            **sac_fields(cfg, obs_dim, action_dim, seed, cfg.actor_lr),
            stats=DataStats.identity(obs_dim),
            log_alpha_prime=make_state(None, log_alpha_prime, cfg.lr),
            cql_alpha=cfg.cql_alpha, n_actions=cfg.n_actions, temperature=cfg.temperature,
            importance_sample=cfg.importance_sample, lagrange=cfg.lagrange,
            lagrange_gap=cfg.lagrange_gap, bc_steps=cfg.bc_steps,
            deterministic_backup=cfg.deterministic_backup, penalty_clip_min=cfg.penalty_clip_min,
        )

    # --------------------------------------------------------------- learning
    def cql_weight(self, params=None):
        """The penalty's weight: fixed, or exp(log alpha') clipped to [0, 1e6] with lagrange."""
        if not self.lagrange:
            return jnp.float32(self.cql_alpha)
        params = self.log_alpha_prime.params if params is None else params
        return jnp.clip(jnp.exp(params["log_alpha"]), 0.0, 1e6)

    def _policy_actions(self, obs, key):
        """n_actions samples of pi(.|obs) per row, flattened to (B * N, d), and log pi (B, N).
        The actor runs once per state; only the noise is drawn N times (running it on the
        state repeated N times was a tenth of the update's arithmetic)."""
        mean, log_std = self.actor.apply_fn(self.actor.params, obs)
        shape = (obs.shape[0], self.n_actions, mean.shape[-1])
        action, logp = tanh_gaussian_sample(jnp.broadcast_to(mean[:, None], shape),
                                            jnp.broadcast_to(log_std[:, None], shape), key)
        return action.reshape(-1, shape[-1]), logp

    def _actor_loss(self, params, batch: Batch, key: jax.Array):
        loss, logp = super()._actor_loss(params, batch, key)
        if self.bc_steps == 0:
            return loss, logp
        mean, log_std = self.actor.apply_fn(params, batch.obs)
        bc = cql_bc_loss(logp, tanh_gaussian_log_prob(mean, log_std, batch.action), self.alpha)
        return jnp.where(self.grad_steps < self.bc_steps, bc, loss), logp

    def target_action(self, next_obs, sampled):
        """The action the TD target bootstraps from: ``sampled`` (one draw of pi(.|s') per
        row), or the policy's mean action with ``deterministic_backup``. ``next_obs`` is
        already normalized (it comes from a batch that went through ``stats``)."""
        if not self.deterministic_backup:
            return sampled
        return tanh_gaussian_mode(self.actor.apply_fn, self.actor.params, next_obs)

    def _critic_step(self, batch: Batch, key: jax.Array):
        """SAC's critic step with the conservative penalty (and the penalty weight's dual step
        with ``lagrange``); the rest of the update is SAC's."""
        B, N = batch.obs.shape[0], self.n_actions
        d = batch.action.shape[-1]
        k_rand, k_pi, k_next = jax.random.split(key, 3)
        a_rand = jax.random.uniform(k_rand, (B * N, d), minval=-1.0, maxval=1.0)
        a_pi, logp_pi = self._policy_actions(batch.obs, k_pi)
        a_next, logp_next = self._policy_actions(batch.next_obs, k_next)
        a_target = self.target_action(batch.next_obs, a_next[jnp.arange(B) * N])
        next_q = self.critic.apply_fn(self.target_critic, batch.next_obs, a_target)
        alpha = self.alpha if self.backup_entropy else 0.0
        target = jax.lax.stop_gradient(
            soft_td_target(batch.reward, batch.discount, next_q, logp_next[:, 0], alpha))
        obs_rep = jnp.repeat(batch.obs, N, axis=0)
        all_obs = jnp.concatenate([batch.obs, obs_rep, obs_rep, obs_rep])
        all_act = jax.lax.stop_gradient(jnp.concatenate([batch.action, a_rand, a_pi, a_next]))
        logp_pi, logp_next = jax.lax.stop_gradient((logp_pi, logp_next))

        def loss_fn(params, ap_params):
            q_all = self.critic.apply_fn(params, all_obs, all_act)
            q_data = q_all[:, :B]
            q_rand, q_pi, q_next = jnp.split(q_all[:, B:].reshape(-1, 3, B, N), 3, axis=1)
            penalty = cql_penalty(q_data, q_rand[:, 0], q_pi[:, 0], logp_pi, q_next[:, 0],
                                  logp_next, d, self.temperature, self.importance_sample,
                                  self.penalty_clip_min)
            td = jnp.sum(jnp.mean((q_data - target) ** 2, axis=-1))
            weight = self.cql_weight(ap_params)
            if self.lagrange:
                conservative = jax.lax.stop_gradient(weight) * jnp.sum(penalty - self.lagrange_gap)
                dual = -weight * jnp.sum(jax.lax.stop_gradient(penalty) - self.lagrange_gap) / 2
            else:
                conservative, dual = weight * jnp.sum(penalty), 0.0
            info = {"critic_loss": td, "cql_penalty": penalty.mean(), "q_mean": q_data.mean(),
                    "q_min": q_data.min(), "q_max": q_data.max(), "q_rand": q_rand.mean(), "cql_weight": weight}
            return td + conservative + dual, info

        grads, info = jax.grad(loss_fn, argnums=(0, 1), has_aux=True)(
            self.critic.params, self.log_alpha_prime.params)
        critic = self.critic.apply_gradients(grads=grads[0])
        alpha_prime = (self.log_alpha_prime.apply_gradients(grads=grads[1]) if self.lagrange
                       else self.log_alpha_prime)
        return self.replace(critic=critic, log_alpha_prime=alpha_prime), info
