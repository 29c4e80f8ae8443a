"""What the on-policy agents (A2C, PPO) share: their common config fields, the rollout
layout, the advantage estimators, and an agent base with a Gaussian policy, a value network
and observation/reward normalizers that are part of the agent (so checkpoints carry them).

Advantage estimators work on (T, N) arrays, time first. ``terminated`` marks a true
termination (no bootstrap); ``done`` marks any episode end, termination or time limit, where
the trace is cut. At a time-limit end, and at the last step of a rollout, the value of the
real next observation ``V(s'_t)`` is the bootstrap.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from contrl.agents.base import AgentBase, compiled_create
from contrl.config import AlgoConfig, ConfigError
from contrl.nets import (ACTIVATIONS, GaussianPolicy, ValueNetwork, gaussian_entropy,
                         gaussian_log_prob)
from contrl.normalize import RunningStats, update_return_stats


@dataclasses.dataclass(unsafe_hash=True)
class OnPolicyConfig(AlgoConfig):
    """What every on-policy actor-critic shares (the on-policy loop reads rollout_steps)."""

    rollout_steps: int = 2048
    """Env steps per environment in each rollout; the batch of one update is
    rollout_steps * num_envs transitions, and one compiled call does the whole update."""
    lr: float = 3e-4
    """Learning rate of the policy and the value network."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over the run."""
    optimizer: str = "adam"
    """adam or rmsprop (both with eps 1e-5)."""
    eps_in_sqrt: bool = False
    """RMSprop only: its eps inside the square root, sqrt(v + eps), as TensorFlow's (OpenAI
    baselines' A2C) and optax's; False: outside, sqrt(v) + eps, as PyTorch's (SB3's and
    Tianshou's A2C). A2C runs saved before this field used True."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda: 1 gives Monte-Carlo advantages (returns minus baseline), 0 one-step TD."""
    normalize_advantages: bool = True
    """Standardize advantages (per minibatch in PPO, per batch in A2C)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and of the value network (separate networks)."""
    activation: str = "tanh"
    """Hidden activation: tanh or relu."""
    init_log_std: float = 0.0
    """Initial log standard deviation of the Gaussian policy."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus in the policy loss."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this (0: no clipping)."""
    normalize_obs: bool = True
    """Standardize observations with running statistics (saved in checkpoints, frozen at
    evaluation)."""
    clip_obs: float = 10.0
    """Clip normalized observations to [-clip_obs, clip_obs]."""
    normalize_reward: bool = True
    """Scale rewards by the running standard deviation of the discounted return."""
    clip_reward: float = 10.0
    """Clip scaled rewards to [-clip_reward, clip_reward]."""

    def check_run(self, run) -> None:
        run.check_whole_env_steps()

    def check_given(self, given: dict) -> None:
        super().check_given(given)
        if "eps_in_sqrt" in given and self.optimizer != "rmsprop":
            raise ConfigError(f"--eps-in-sqrt / --no-eps-in-sqrt set RMSprop's epsilon; the "
                              f"optimizer is {self.optimizer} (add --optimizer rmsprop)")

    def validate(self) -> None:
        self._positive("rollout_steps", "clip_obs", "clip_reward")
        self._in_range("lr", 0.0, 1.0, low_open=True)
        self._nonneg("ent_coef", "max_grad_norm")
        self._in_range("gamma", 0.0, 1.0)
        self._in_range("gae_lambda", 0.0, 1.0)
        self._one_of("optimizer", ("adam", "rmsprop"))
        self._one_of("activation", tuple(ACTIVATIONS))
        self._widths("hidden")


class Rollout(NamedTuple):
    """One rollout, (T, N, ...) arrays. ``action`` is the unclipped Gaussian sample;
    ``next_obs`` is the real next observation (the final one at episode ends)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    next_obs: jax.Array


# ------------------------------------------------------------------ advantage estimators
def gae(rewards, values, next_values, terminated, done, gamma: float, lam: float):
    """Generalized advantage estimation:
    delta_t = r_t + gamma * (1 - term_t) * V(s'_t) - V(s_t);  A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}."""
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values

    def step(next_adv, x):
        delta, d = x
        adv = delta + gamma * lam * (1.0 - d) * next_adv
        return adv, adv

    _, adv = jax.lax.scan(step, jnp.zeros_like(deltas[0]), (deltas, done), reverse=True)
    return adv


def discounted_returns(rewards, next_values, terminated, done, gamma: float):
    """Reward-to-go G_t = r_t + gamma * (1 - term_t) * (V(s'_t) if done_t or t = T-1 else G_{t+1})."""

    def step(next_return, x):
        r, v_next, term, d = x
        g = r + gamma * (1.0 - term) * jnp.where(d, v_next, next_return)
        return g, g

    _, returns = jax.lax.scan(step, next_values[-1], (rewards, next_values, terminated, done),
                              reverse=True)
    return returns


def episode_start_returns(returns, done):
    """Each step's value of ``returns`` at the first step of its episode segment in the rollout,
    i.e. REINFORCE's whole-trajectory return sum_t' gamma^t' r_t' given to every step."""

    def step(carry, x):
        start_value, first = carry
        g, d = x
        start_value = jnp.where(first, g, start_value)
        return (start_value, d.astype(bool)), start_value

    first = jnp.ones(returns.shape[1:], bool)
    _, out = jax.lax.scan(step, (returns[0], first), (returns, done))
    return out


def standardize(x):
    return (x - x.mean()) / (x.std() + 1e-8)


def clip_grads(grads, max_norm: float):
    """Scale a gradient pytree so its global norm is at most ``max_norm`` (0: unchanged)."""
    if not max_norm:
        return grads
    norm = optax.tree.norm(grads)
    return jax.tree_util.tree_map(lambda g: g * jnp.minimum(1.0, max_norm / (norm + 1e-6)), grads)


def apply_grads(state: TrainState, grads, lr_scale) -> TrainState:
    """One optimizer step with the learning rate multiplied by ``lr_scale`` (annealing)."""
    updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
    updates = jax.tree_util.tree_map(lambda u: u * lr_scale, updates)
    return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                         opt_state=opt_state)


def explained_variance(pred, target):
    return 1.0 - jnp.var(target - pred) / (jnp.var(target) + 1e-8)


# ------------------------------------------------------------------------------- acting
@partial(jax.jit, static_argnums=(0, 1))
def _sample_gaussian(apply_fn, normalize: bool, clip_obs, params, stats: RunningStats, key, obs):
    key, sub = jax.random.split(key)
    x = stats.normalize(obs, clip_obs) if normalize else obs
    mean, log_std = apply_fn(params, x)
    return mean + jnp.exp(log_std) * jax.random.normal(sub, mean.shape), key


@partial(jax.jit, static_argnums=(0, 1))
def _gaussian_mean(apply_fn, normalize: bool, clip_obs, params, stats: RunningStats, obs):
    x = stats.normalize(obs, clip_obs) if normalize else obs
    return jnp.clip(apply_fn(params, x)[0], -1.0, 1.0)


class OnPolicyAgent(AgentBase, struct.PyTreeNode):
    """Gaussian policy, value network, normalizers and a key; subclasses add ``update``."""

    policy: TrainState
    value: TrainState
    obs_stats: RunningStats
    return_stats: RunningStats
    running_return: jax.Array  # (N,) discounted return per env, for reward scaling
    key: jax.Array
    cfg: OnPolicyConfig = struct.field(pytree_node=False)

    @classmethod
    def create(cls, cfg: OnPolicyConfig, obs_dim: int, action_dim: int, seed: int,
               num_envs: int = 1):
        agent = compiled_create(cls._build, cfg, obs_dim, action_dim, seed)
        return agent.replace(running_return=jnp.zeros(num_envs, jnp.float32))

    @classmethod
    def _build(cls, cfg: OnPolicyConfig, obs_dim: int, action_dim: int, seed):
        key, k_pi, k_v = jax.random.split(jax.random.PRNGKey(seed), 3)
        obs = jnp.zeros((1, obs_dim), jnp.float32)
        pi_net = GaussianPolicy(tuple(cfg.hidden), action_dim, cfg.activation, cfg.init_log_std)
        v_net = ValueNetwork(tuple(cfg.hidden), cfg.activation)
        make_tx = optax.adam if cfg.optimizer == "adam" else partial(
            optax.rmsprop, decay=0.99, eps_in_sqrt=cfg.eps_in_sqrt)
        return cls(
            policy=TrainState.create(apply_fn=pi_net.apply, params=pi_net.init(k_pi, obs),
                                     tx=make_tx(cfg.lr, eps=1e-5)),
            value=TrainState.create(apply_fn=v_net.apply, params=v_net.init(k_v, obs),
                                    tx=make_tx(cfg.lr, eps=1e-5)),
            obs_stats=RunningStats.create((obs_dim,)),
            return_stats=RunningStats.create(),
            running_return=jnp.zeros(1, jnp.float32),
            key=key,
            cfg=cfg,
        )

    def sample_actions(self, obs, carry=()):
        """Unclipped Gaussian actions for the rollout (the loop clips what the env gets)."""
        action, key = _sample_gaussian(self.policy.apply_fn, self.cfg.normalize_obs,
                                       self.cfg.clip_obs, self.policy.params, self.obs_stats,
                                       self.key, obs)
        return action, carry, self.replace(key=key)

    def eval_actions(self, obs, carry=()):
        """The Gaussian's mean, clipped to [-1, 1] as the env's actions are in training."""
        mean = _gaussian_mean(self.policy.apply_fn, self.cfg.normalize_obs, self.cfg.clip_obs,
                              self.policy.params, self.obs_stats, obs)
        return jnp.clip(mean, -1.0, 1.0), carry

    def prepare(self, ro: Rollout):
        """Normalize the rollout with the statistics the policy acted with, value it, scale the
        rewards, and merge the rollout into the normalizers for the next rollout.
        Returns (agent, obs, rewards, values, next_values)."""
        cfg = self.cfg
        if cfg.normalize_obs:
            obs = self.obs_stats.normalize(ro.obs, cfg.clip_obs)
            next_obs = self.obs_stats.normalize(ro.next_obs, cfg.clip_obs)
            obs_stats = self.obs_stats.update(ro.obs)
        else:
            obs, next_obs, obs_stats = ro.obs, ro.next_obs, self.obs_stats
        rewards, return_stats, running = ro.reward, self.return_stats, self.running_return
        if cfg.normalize_reward:
            return_stats, running = update_return_stats(return_stats, running, ro.reward, ro.done,
                                                        cfg.gamma)
            rewards = jnp.clip(rewards / jnp.sqrt(return_stats.var + 1e-8),
                               -cfg.clip_reward, cfg.clip_reward)
        values = self.value.apply_fn(self.value.params, obs)
        next_values = self.value.apply_fn(self.value.params, next_obs)
        agent = self.replace(obs_stats=obs_stats, return_stats=return_stats, running_return=running)
        return agent, obs, rewards, values, next_values

    def log_prob(self, params, obs, action):
        """(log pi(action|obs), entropy) under policy parameters ``params``."""
        mean, log_std = self.policy.apply_fn(params, obs)
        return gaussian_log_prob(mean, log_std, action), gaussian_entropy(log_std)
