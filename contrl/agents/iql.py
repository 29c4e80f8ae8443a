"""Implicit Q-Learning (Kostrikov, Nair and Levine 2021).

V(s) is fitted to an upper expectile of Q(s, a) over dataset actions, Q(s, a) to
r + gamma V(s'), so no action outside the dataset is ever evaluated; the policy is extracted by
advantage-weighted regression with weights exp(beta (Q - V)) clipped at ``max_weight``.
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import optax
from flax import struct
from flax.training.train_state import TrainState

from contrl.agents.base import AgentBase, compiled_create, make_state, scan_updates, td_loss
from contrl.agents.offline import DataStats, OfflineConfig, fit_stats
from contrl.config import ConfigError
from contrl.data.batch import Batch
from contrl.nets import (BoundedGaussianPolicy, CriticEnsemble, StateValue, gaussian_log_prob,
                         polyak)


@dataclasses.dataclass
class IQLConfig(OfflineConfig):
    """IQL hyperparameters (defaults: the paper's locomotion setting, with observations
    standardized as CORL does; the paper's code does not: --no-normalize-obs)."""

    expectile: float = 0.7
    """Expectile of Q over dataset actions that V fits (0.5: the mean; towards 1: the max)."""
    beta: float = 3.0
    """Inverse temperature of the advantage weights exp(beta * (Q - V))."""
    max_weight: float = 100.0
    """Advantage weights are clipped at this value."""
    actor_hidden: tuple[int, ...] = ()
    """Hidden layer widths of the actor alone (empty: ``hidden``, shared with the critics
    and the value). On contrl's AntMaze data a 3x512 regression policy turns the ant over far
    less often than a 2x256 one (benchmarks/results/antmaze/README.md, session 16)."""
    actor_decay_steps: int = 0
    """Cosine decay of the actor's learning rate to 0 over this many gradient steps (0: over
    the run's offline steps; no decay when online_steps > 0, as in the paper's fine-tuning)."""
    reward_normalization: str = "returns"
    """none; returns: rewards * 1000 / (max - min episode return of the dataset) (IQL's
    locomotion setting); antmaze: rewards - 1 (IQL's sparse-goal setting)."""

    def validate(self) -> None:
        super().validate()
        self._in_range("expectile", 0.0, 1.0, low_open=True)
        self._nonneg("beta", "actor_decay_steps")
        self._positive("max_weight")
        self._widths("actor_hidden", allow_empty=True)

    @property
    def actor_widths(self) -> tuple[int, ...]:
        """The actor's hidden widths: ``actor_hidden``, else the shared ``hidden``."""
        return tuple(self.actor_hidden or self.hidden)

    def check_run(self, run) -> None:
        super().check_run(run)
        if self.actor_decay_steps == 0 and self.online_steps == 0:
            self.actor_decay_steps = run.steps
        if self.online_steps == 0 and run.steps > self.actor_decay_steps:
            raise ConfigError(
                f"--steps {run.steps} is past actor_decay_steps {self.actor_decay_steps}: the "
                "actor's learning rate is 0 from then on, so it would not train (a resumed "
                "run's decay ends at the --steps it started with: start a new run with the "
                "steps wanted; a new run: --actor-decay-steps 0 decays over all its steps)")

    def check_given(self, given: dict) -> None:
        super().check_given(given)
        if self.online_steps and given.get("actor_decay_steps"):
            raise ConfigError("--actor-decay-steps: with --online-steps the actor keeps a "
                              "constant learning rate (IQL's fine-tuning setting); drop it")


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
    """Asymmetric squared loss: |expectile - 1(diff < 0)| * diff^2, averaged; diff = Q - V."""
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return jnp.mean(weight * diff**2)


def awr_weights(adv: jax.Array, beta: float, max_weight: float) -> jax.Array:
    """exp(beta * advantage), clipped at max_weight."""
    return jnp.minimum(jnp.exp(beta * adv), max_weight)


# Acting is jitted on the actor's parameters and the dataset statistics alone (run op by op,
# the policy's forward pass cost ~70x more per env step).
@partial(jax.jit, static_argnums=0)
def _mean_action(apply_fn, params, stats: DataStats, obs):
    return apply_fn(params, stats.obs(obs))[0]


@partial(jax.jit, static_argnums=0)
def _sample_action(apply_fn, params, stats: DataStats, key, obs):
    key, sub = jax.random.split(key)
    mean, log_std = apply_fn(params, stats.obs(obs))
    action = mean + jnp.exp(log_std) * jax.random.normal(sub, mean.shape)
    return jnp.clip(action, -1.0, 1.0), key


class IQL(AgentBase, struct.PyTreeNode):
    """Immutable IQL agent; ``update`` does K gradient steps in one jitted call."""

    METRICS = ("value_loss", "critic_loss", "actor_loss", "q_mean", "v_mean", "adv_mean")

    actor: TrainState
    critic: TrainState
    target_critic: dict
    value: TrainState
    stats: DataStats
    key: jax.Array
    tau: float = struct.field(pytree_node=False, default=0.005)
    expectile: float = struct.field(pytree_node=False, default=0.7)
    beta: float = struct.field(pytree_node=False, default=3.0)
    max_weight: float = struct.field(pytree_node=False, default=100.0)

    @classmethod
    def create(cls, cfg: IQLConfig, obs_dim: int, action_dim: int, seed: int, num_envs: int = 1):
        return compiled_create(cls._build, cfg, obs_dim, action_dim, seed)

    @classmethod
    def _build(cls, cfg: IQLConfig, obs_dim: int, action_dim: int, seed):
        key, k_actor, k_critic, k_value = jax.random.split(jax.random.PRNGKey(seed), 4)
        obs = jnp.zeros((1, obs_dim), jnp.float32)
        act = jnp.zeros((1, action_dim), jnp.float32)
        actor_net = BoundedGaussianPolicy(cfg.actor_widths, action_dim, weight_init=cfg.weight_init)
        critic_net = CriticEnsemble(tuple(cfg.hidden), cfg.n_critics, cfg.critic_layer_norm, cfg.weight_init)
        value_net = StateValue(tuple(cfg.hidden), cfg.critic_layer_norm, cfg.weight_init)
        critic_params = critic_net.init(k_critic, obs, act)
        actor_lr = (optax.cosine_decay_schedule(cfg.lr, cfg.actor_decay_steps)
                    if cfg.actor_decay_steps > 0 and cfg.online_steps == 0 else cfg.lr)
        return cls(
            actor=make_state(actor_net, actor_net.init(k_actor, obs), actor_lr),
            critic=make_state(critic_net, critic_params, cfg.lr),
            target_critic=jax.tree_util.tree_map(jnp.copy, critic_params),
            value=make_state(value_net, value_net.init(k_value, obs), cfg.lr),
            stats=DataStats.identity(obs_dim),
            key=key,
            tau=cfg.tau, expectile=cfg.expectile, beta=cfg.beta, max_weight=cfg.max_weight,
        )

    def fit_dataset(self, dataset, cfg: IQLConfig) -> "IQL":
        return fit_stats(self, dataset, cfg)

    # ----------------------------------------------------------------- acting
    def eval_actions(self, obs, carry=()):
        return _mean_action(self.actor.apply_fn, self.actor.params, self.stats, obs), carry

    def sample_actions(self, obs, carry=()):
        action, key = _sample_action(self.actor.apply_fn, self.actor.params, self.stats,
                                     self.key, obs)
        return action, carry, self.replace(key=key)

    # --------------------------------------------------------------- learning
    def _step(self, batch: Batch):
        batch = self.stats.batch(batch)
        q_target = self.critic.apply_fn(self.target_critic, batch.obs, batch.action).min(0)

        def value_loss_fn(params):
            v = self.value.apply_fn(params, batch.obs)
            return expectile_loss(q_target - v, self.expectile), v

        (value_loss, v), grads = jax.value_and_grad(value_loss_fn, has_aux=True)(self.value.params)
        value = self.value.apply_gradients(grads=grads)

        weights = awr_weights(q_target - v, self.beta, self.max_weight)

        def actor_loss_fn(params):
            mean, log_std = self.actor.apply_fn(params, batch.obs)
            return -jnp.mean(weights * gaussian_log_prob(mean, log_std, batch.action))

        actor_loss, grads = jax.value_and_grad(actor_loss_fn)(self.actor.params)
        actor = self.actor.apply_gradients(grads=grads)

        target = batch.reward + batch.discount * value.apply_fn(value.params, batch.next_obs)

        def critic_loss_fn(params):
            q = self.critic.apply_fn(params, batch.obs, batch.action)
            return td_loss(q, target), q.mean()

        (critic_loss, q_mean), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
            self.critic.params)
        critic = self.critic.apply_gradients(grads=grads)
        agent = self.replace(actor=actor, critic=critic, value=value,
                             target_critic=polyak(self.target_critic, critic.params, self.tau))
        return agent, {"value_loss": value_loss, "critic_loss": critic_loss,
                       "actor_loss": actor_loss, "q_mean": q_mean, "v_mean": v.mean(),
                       "adv_mean": jnp.mean(q_target - v)}

    @partial(jax.jit, donate_argnums=0)
    def update(self, batches: Batch):
        return scan_updates(lambda a, b: a._step(b), self, batches)
