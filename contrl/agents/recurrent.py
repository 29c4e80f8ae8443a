"""Recurrent off-policy agents for partially observed tasks: RSAC, RTD3 and RDPG.

The losses are SAC's, TD3's and DDPG's; a recurrent core (GRU or LSTM) reads the observation
sequence in front of the MLP heads, one core for the actor and one for the critic ensemble
(or, with ``shared_encoder``, the actor's head reads the critics' core without training it).
Target networks include their cores.

Training uses windows of ``seq_len`` consecutive steps of one episode (``contrl.data``'s
``sample_windows``: of the replay buffer and, with ``offline_ratio``, of a dataset's episodes,
joined along the batch axis), time-major; the state starts at zero at the window's start, the first
``burn_in`` steps only warm it, padding past the episode's end is masked out of every loss,
and one compiled call does K window-batch updates like the other agents. Acting carries the
core's state per env (the policy's carry), reset at each episode's end by the loops.
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from flax.training.train_state import TrainState

from contrl.agents.base import AgentBase, compiled_create, make_state, td_target
from contrl.agents.ddpg import DDPGConfig
from contrl.agents.sac import SAC, SACConfig, soft_td_target, temperature_loss
from contrl.agents.td3 import TD3, TD3Config, smoothed_target_action
from contrl.config import ConfigError
from contrl.data.batch import SequenceBatch
from contrl.nets import (LOG_STD_MAX, LOG_STD_MIN, RecurrentCore, SequenceHead, polyak,
                         tanh_gaussian_sample)


@dataclasses.dataclass
class RecurrentFields:
    """What the recurrent agents add to their feed-forward configs."""

    rnn: str = "gru"
    """Recurrent core: gru or lstm."""
    rnn_hidden: int = 128
    """Width of the recurrent core's state."""
    seq_len: int = 64
    """Steps per training window (burn-in included), or -1 for whole episodes (windows as long
    as the env's time limit, starting at episode starts). Fixed windows start uniformly and
    from a zero state, so an episode's first steps are trained about 1/seq_len as often as
    its middle: tasks whose cue comes at the start (Reacher-FirstTarget) need -1."""
    burn_in: int = 0
    """First steps of each window that only warm the recurrent state (no loss, no gradient
    into the state they produce); shorter near an episode's start."""
    shared_encoder: bool = False
    """The actor reads the critics' recurrent core (trained by the critic loss only) instead
    of having its own."""
    batch_size: int = 32
    """Windows (sequences) per gradient step."""

    def validate(self) -> None:
        super().validate()
        self._one_of("rnn", ("gru", "lstm"))
        self._positive("rnn_hidden")
        self._nonneg("burn_in")
        if self.seq_len == 0 or self.seq_len < -1:
            raise ConfigError(f"seq_len must be a positive window length or -1 (whole episodes), "
                              f"got {self.seq_len}")
        if self.seq_len == -1 and self.burn_in:
            raise ConfigError("burn_in needs seq_len > 0 (whole-episode windows start at the "
                              "episode's first step)")
        if self.seq_len > 0 and self.burn_in >= self.seq_len:
            raise ConfigError(f"burn_in ({self.burn_in}) must be shorter than the window "
                              f"seq_len ({self.seq_len})")
        if self.n_step != 1:
            raise ConfigError(f"recurrent agents use one-step targets: n_step must be 1, got "
                              f"{self.n_step}")

    def check_run(self, run) -> None:
        super().check_run(run)
        per_env = self.buffer_size // run.num_envs
        if self.seq_len > 0 and per_env < self.seq_len:
            raise ConfigError(f"buffer_size {self.buffer_size} holds {per_env} steps per env, "
                              f"fewer than one training window (seq_len {self.seq_len})")

    def check_dataset(self, dataset) -> None:
        dataset.require_episodes("recurrent agents cut their training windows from episodes")

    def check_episode_limit(self, episode_limit: int | None, num_envs: int) -> None:
        self._windows(episode_limit)
        per_env = self.buffer_size // num_envs
        if self.seq_len == -1 and per_env <= episode_limit:
            # no episode start would survive in the ring: every window would begin mid-episode
            raise ConfigError(f"buffer_size {self.buffer_size} holds {per_env} steps per env, "
                              f"too few for one whole episode (time limit {episode_limit}) "
                              "and its final observation, which seq_len -1 trains on")

    def _windows(self, episode_limit: int | None) -> tuple[int, int, bool]:
        """(trained steps, burn-in steps, whole episodes) of every training window."""
        if self.seq_len == -1:
            if not episode_limit:
                raise ConfigError("seq_len -1 (whole episodes) needs an env with a time limit")
            return episode_limit, 0, True
        return self.seq_len - self.burn_in, self.burn_in, False

    def replay_batches(self, buffer, n: int, k: int, episode_limit: int | None):
        """``k`` batches of ``n`` training windows from the replay buffer."""
        return buffer.sample_windows(n, self.gamma, k, *self._windows(episode_limit))

    def dataset_batches(self, dataset, rng, n: int, k: int, episode_limit: int | None):
        """``k`` batches of ``n`` training windows from the dataset's episodes."""
        return dataset.sample_windows(rng, n, self.gamma, k, *self._windows(episode_limit))


_RECURRENT_LOOP = ("seq_len", "burn_in")  # how windows are drawn; the networks do not change


@dataclasses.dataclass
class RSACConfig(RecurrentFields, SACConfig):
    """Recurrent SAC hyperparameters."""

    LOOP_FIELDS = SACConfig.LOOP_FIELDS + _RECURRENT_LOOP


@dataclasses.dataclass
class _DeterministicRecurrent(RecurrentFields):
    def validate(self) -> None:
        super().validate()
        if self.noise_type != "gaussian":
            raise ConfigError("recurrent agents explore with gaussian noise (noise_type gaussian), "
                              f"got '{self.noise_type}'")


@dataclasses.dataclass
class RTD3Config(_DeterministicRecurrent, TD3Config):
    """Recurrent TD3 hyperparameters."""

    LOOP_FIELDS = TD3Config.LOOP_FIELDS + _RECURRENT_LOOP


@dataclasses.dataclass
class RDPGConfig(_DeterministicRecurrent, DDPGConfig):
    """Recurrent DDPG hyperparameters."""

    LOOP_FIELDS = DDPGConfig.LOOP_FIELDS + _RECURRENT_LOOP


# ----------------------------------------------------------------------------- losses
def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``x`` over the steps ``mask`` counts (x may have leading ensemble axes)."""
    return jnp.sum(x * mask) / (jnp.maximum(mask.sum(), 1.0) * (x.size // mask.size))


def masked_td_loss(q: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
    """0.5 * masked mean squared TD error, summed over the critic ensemble (q: (n, T, B))."""
    return 0.5 * q.shape[0] * masked_mean((q - target) ** 2, mask)


# ----------------------------------------------------------------------------- acting
def _mean_log_std(out: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A Gaussian head's output split into mean and clipped log std (as TanhGaussianActor)."""
    mean, log_std = jnp.split(out, 2, axis=-1)
    return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


@partial(jax.jit, static_argnames=("core", "head", "mode"))
def _act(core, head, enc_params, head_params, key, obs, carry, mode: str, sigma: float = 0.0):
    """One step of a recurrent policy for every env: (actions, carry, key)."""
    feats, carry = core.apply(enc_params, obs[None], carry)
    out = head.apply(head_params, feats[0], obs)
    key, sub = jax.random.split(key)
    if mode in ("sample", "mode"):
        mean, log_std = _mean_log_std(out)
        action = (tanh_gaussian_sample(mean, log_std, sub)[0] if mode == "sample"
                  else jnp.tanh(mean))
    else:
        action = jnp.tanh(out)
        if mode == "noisy":
            action = jnp.clip(action + sigma * jax.random.normal(sub, action.shape), -1.0, 1.0)
    return action, carry, key


class _Recurrent(AgentBase):
    """What RSAC and RTD3 share: their cores, heads, features and acting."""

    def initial_carry(self, num_envs: int):
        return jnp.zeros((num_envs, RecurrentCore.carry_dim(self.core.kind, self.core.hidden)),
                         jnp.float32)

    def _features(self, encoder, obs, stop):
        """The recurrent core's outputs over ``obs`` from a zero state: (T, B, hidden)."""
        return self.core.apply(encoder, obs, self.initial_carry(obs.shape[1]), stop)[0]

    def _actor_encoder(self, actor_params, critic_params):
        """The core the actor reads: its own, or (shared) the critics', held fixed."""
        if self.shared:
            return jax.lax.stop_gradient(critic_params["encoder"])
        return actor_params["encoder"]

    def _q(self, critic_params, feats, obs, action):
        """Q of every ensemble member: (n, T, B)."""
        return self.critic_heads.apply(critic_params["heads"], feats, obs, action)[..., 0]

    def _enc_for_acting(self):
        return self.critic.params["encoder"] if self.shared else self.actor.params["encoder"]

    def _act(self, obs, carry, mode, sigma=0.0):
        return _act(self.core, self.actor_head, self._enc_for_acting(),
                    self.actor.params["head"], self.key, jnp.asarray(obs), carry, mode, sigma)


def _networks(cfg, obs_dim: int, action_dim: int, out_dim: int, seed):
    """Fresh parameters of an actor (core + head, or head alone when shared) and a critic
    ensemble (core + heads); returns (key, modules, actor params, critic params)."""
    key, k_ae, k_ah, k_ce, k_ch = jax.random.split(jax.random.PRNGKey(seed), 5)
    core = RecurrentCore(cfg.rnn, cfg.rnn_hidden)
    actor_head = SequenceHead(tuple(cfg.hidden), out_dim, weight_init=cfg.weight_init)
    critic_heads = SequenceHead(tuple(cfg.hidden), 1, cfg.n_critics, cfg.critic_layer_norm,
                                cfg.weight_init)
    obs = jnp.zeros((1, 1, obs_dim), jnp.float32)
    act = jnp.zeros((1, 1, action_dim), jnp.float32)
    carry = jnp.zeros((1, RecurrentCore.carry_dim(cfg.rnn, cfg.rnn_hidden)), jnp.float32)
    feats = jnp.zeros((1, 1, cfg.rnn_hidden), jnp.float32)
    actor = {"head": actor_head.init(k_ah, feats, obs)}
    if not cfg.shared_encoder:
        actor["encoder"] = core.init(k_ae, obs, carry)
    critic = {"encoder": core.init(k_ce, obs, carry),
              "heads": critic_heads.init(k_ch, feats, obs, act)}
    return key, (core, actor_head, critic_heads), actor, critic


# ----------------------------------------------------------------------------- RSAC
class RSAC(_Recurrent, struct.PyTreeNode):
    """Recurrent SAC; ``update`` does K window-batch gradient steps in one jitted call."""

    METRICS = ("critic_loss", "q_mean", "actor_loss", "entropy", "alpha", "alpha_loss")

    actor: TrainState
    critic: TrainState
    target_critic: dict
    log_alpha: TrainState
    key: jax.Array
    grad_steps: jax.Array
    core: RecurrentCore = struct.field(pytree_node=False)
    actor_head: SequenceHead = struct.field(pytree_node=False)
    critic_heads: SequenceHead = struct.field(pytree_node=False)
    shared: bool = struct.field(pytree_node=False)
    tau: float = struct.field(pytree_node=False)
    target_entropy: float = struct.field(pytree_node=False)
    autotune_alpha: bool = struct.field(pytree_node=False)
    backup_entropy: bool = struct.field(pytree_node=False)

    @classmethod
    def create(cls, cfg: RSACConfig, obs_dim: int, action_dim: int, seed: int,
               num_envs: int = 1) -> "RSAC":
        return compiled_create(cls._build, cfg, obs_dim, action_dim, seed)

    @classmethod
    def _build(cls, cfg: RSACConfig, obs_dim: int, action_dim: int, seed) -> "RSAC":
        key, (core, actor_head, critic_heads), actor, critic = _networks(
            cfg, obs_dim, action_dim, 2 * action_dim, seed)
        log_alpha = {"log_alpha": jnp.full((), np.log(cfg.init_alpha), jnp.float32)}
        return cls(
            actor=make_state(None, actor, cfg.lr), critic=make_state(None, critic, cfg.lr),
            target_critic=jax.tree_util.tree_map(jnp.copy, critic),
            log_alpha=make_state(None, log_alpha, cfg.lr), key=key,
            grad_steps=jnp.zeros((), jnp.int32), core=core, actor_head=actor_head,
            critic_heads=critic_heads, shared=cfg.shared_encoder, tau=cfg.tau,
            target_entropy=(-float(action_dim) if cfg.target_entropy is None
                            else float(cfg.target_entropy)),
            autotune_alpha=cfg.autotune_alpha, backup_entropy=cfg.backup_entropy)

    def sample_actions(self, obs, carry):
        action, carry, key = self._act(obs, carry, "sample")
        return action, carry, self.replace(key=key)

    def eval_actions(self, obs, carry):
        return self._act(obs, carry, "mode")[:2]

    @property
    def alpha(self) -> jax.Array:
        return jnp.exp(self.log_alpha.params["log_alpha"])

    def _policy(self, head_params, feats, obs, key):
        """Sampled actions and their log-probabilities given the actor's features."""
        mean, log_std = _mean_log_std(self.actor_head.apply(head_params, feats, obs))
        return tanh_gaussian_sample(mean, log_std, key)

    def _update_step(self, batch: SequenceBatch):
        key, k_next, k_pi = jax.random.split(self.key, 3)
        obs, stop, mask = batch.obs, batch.stop, batch.mask
        now, nxt = obs[:-1], obs[1:]
        sg = jax.lax.stop_gradient
        alpha = self.alpha if self.backup_entropy else 0.0

        # r + gamma * (min Q'(h'_{t+1}, a') - alpha log pi(a'|h_{t+1}))
        feats = self._features(self._actor_encoder(self.actor.params, self.critic.params), obs,
                               stop)
        next_action, next_logp = self._policy(self.actor.params["head"], feats[1:], nxt, k_next)
        next_q = self._q(self.target_critic,
                         self._features(self.target_critic["encoder"], obs, stop)[1:], nxt,
                         next_action)
        target = sg(soft_td_target(batch.reward, batch.discount, next_q, next_logp, alpha))

        def critic_loss(params):
            q = self._q(params, self._features(params["encoder"], now, stop[:-1]), now,
                        batch.action)
            return masked_td_loss(q, target, mask), masked_mean(q, mask)

        (c_loss, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(self.critic.params)
        critic = self.critic.apply_gradients(grads=grads)

        critic_feats = sg(self._features(critic.params["encoder"], now, stop[:-1]))

        def actor_loss(params):  # E[alpha log pi(a|h_t) - min Q(h_t, a)], the critics held fixed
            feats = self._features(self._actor_encoder(params, critic.params), now, stop[:-1])
            action, logp = self._policy(params["head"], feats, now, k_pi)
            q = self._q(critic.params, critic_feats, now, action)
            return masked_mean(self.alpha * logp - q.min(0), mask), logp

        (a_loss, logp), grads = jax.value_and_grad(actor_loss, has_aux=True)(self.actor.params)
        entropy = -masked_mean(logp, mask)
        agent = self.replace(actor=self.actor.apply_gradients(grads=grads), critic=critic,
                             target_critic=polyak(self.target_critic, critic.params, self.tau),
                             key=key, grad_steps=self.grad_steps + 1)
        info = {"critic_loss": c_loss, "q_mean": q_mean, "actor_loss": a_loss,
                "entropy": entropy}
        if self.autotune_alpha:
            loss_fn = lambda p: temperature_loss(p["log_alpha"], sg(entropy),  # noqa: E731
                                                 self.target_entropy)
            alpha_loss, grads = jax.value_and_grad(loss_fn)(agent.log_alpha.params)
            agent = agent.replace(log_alpha=agent.log_alpha.apply_gradients(grads=grads))
            info["alpha_loss"] = alpha_loss
        info["alpha"] = agent.alpha
        return agent, info

    update = SAC.update  # K window-batch steps in one compiled call


# ----------------------------------------------------------------------------- RTD3 / RDPG
class RTD3(_Recurrent, struct.PyTreeNode):
    """Recurrent TD3 (and, with DDPG's defaults, RDPG): twin critics, target policy smoothing
    and delayed actor updates over windows."""

    METRICS = ("critic_loss", "q_mean", "actor_loss")

    actor: TrainState
    critic: TrainState
    target_actor: dict
    target_critic: dict
    key: jax.Array
    critic_steps: jax.Array
    actor_loss: jax.Array
    core: RecurrentCore = struct.field(pytree_node=False)
    actor_head: SequenceHead = struct.field(pytree_node=False)
    critic_heads: SequenceHead = struct.field(pytree_node=False)
    shared: bool = struct.field(pytree_node=False)
    tau: float = struct.field(pytree_node=False)
    exploration_noise: float = struct.field(pytree_node=False)
    policy_noise: float = struct.field(pytree_node=False)
    noise_clip: float = struct.field(pytree_node=False)
    policy_delay: int = struct.field(pytree_node=False)
    actor_q: str = struct.field(pytree_node=False)
    target_update: str = struct.field(pytree_node=False)

    @classmethod
    def create(cls, cfg: RTD3Config, obs_dim: int, action_dim: int, seed: int,
               num_envs: int = 1) -> "RTD3":
        return compiled_create(cls._build, cfg, obs_dim, action_dim, seed)

    @classmethod
    def _build(cls, cfg: RTD3Config, obs_dim: int, action_dim: int, seed) -> "RTD3":
        key, (core, actor_head, critic_heads), actor, critic = _networks(
            cfg, obs_dim, action_dim, action_dim, seed)
        copy = partial(jax.tree_util.tree_map, jnp.copy)
        return cls(
            actor=make_state(None, actor, cfg.lr), critic=make_state(None, critic, cfg.lr),
            target_actor=copy(actor), target_critic=copy(critic), key=key,
            critic_steps=jnp.zeros((), jnp.int32), actor_loss=jnp.zeros((), jnp.float32),
            core=core, actor_head=actor_head, critic_heads=critic_heads,
            shared=cfg.shared_encoder, tau=cfg.tau, exploration_noise=cfg.exploration_noise,
            policy_noise=cfg.policy_noise, noise_clip=cfg.noise_clip,
            policy_delay=cfg.policy_delay, actor_q=cfg.actor_q, target_update=cfg.target_update)

    def sample_actions(self, obs, carry):
        action, carry, key = self._act(obs, carry, "noisy", self.exploration_noise)
        return action, carry, self.replace(key=key)

    def eval_actions(self, obs, carry):
        return self._act(obs, carry, "deterministic")[:2]

    def _mu(self, head_params, feats, obs):
        return jnp.tanh(self.actor_head.apply(head_params, feats, obs))

    def _critic_step(self, batch: SequenceBatch, key):
        obs, stop, mask = batch.obs, batch.stop, batch.mask
        now, nxt = obs[:-1], obs[1:]
        sg = jax.lax.stop_gradient

        feats = self._features(self._actor_encoder(self.target_actor, self.target_critic), obs,
                               stop)
        mu_next = self._mu(self.target_actor["head"], feats[1:], nxt)
        noise = self.policy_noise * jax.random.normal(key, mu_next.shape)
        next_action = smoothed_target_action(mu_next, noise, self.noise_clip)
        next_q = self._q(self.target_critic,
                         self._features(self.target_critic["encoder"], obs, stop)[1:], nxt,
                         next_action)
        target = sg(td_target(batch.reward, batch.discount, next_q))

        def loss_fn(params):
            q = self._q(params, self._features(params["encoder"], now, stop[:-1]), now,
                        batch.action)
            return masked_td_loss(q, target, mask), masked_mean(q, mask)

        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(self.critic.params)
        return self.critic.apply_gradients(grads=grads), {"critic_loss": loss, "q_mean": q_mean}

    def _actor_step(self, batch: SequenceBatch) -> "RTD3":
        now, stop, mask = batch.obs[:-1], batch.stop[:-1], batch.mask
        critic_params = self.critic.params

        critic_feats = jax.lax.stop_gradient(self._features(critic_params["encoder"], now, stop))

        def loss_fn(params):  # -E[Q_1(h_t, mu(h_t))] (or min over critics), the critics fixed
            mu = self._mu(params["head"], self._features(self._actor_encoder(params, critic_params),
                                                         now, stop), now)
            q = self._q(critic_params, critic_feats, now, mu)
            return -masked_mean(jnp.min(q, axis=0) if self.actor_q == "min" else q[0], mask)

        loss, grads = jax.value_and_grad(loss_fn)(self.actor.params)
        agent = self.replace(actor=self.actor.apply_gradients(grads=grads), actor_loss=loss)
        return agent._move_targets() if self.target_update == "delayed" else agent

    # TD3's step (critics, then actor and targets every policy_delay-th) and K-step update
    _move_targets = TD3._move_targets
    _update_step = TD3._update_step
    update = TD3.update


RDPG = RTD3
