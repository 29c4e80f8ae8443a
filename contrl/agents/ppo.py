"""Proximal Policy Optimization (Schulman et al. 2017), clipped surrogate objective."""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp

from contrl.agents.onpolicy import (OnPolicyAgent, OnPolicyConfig, Rollout, apply_grads,
                                    clip_grads, explained_variance, gae, standardize)
from contrl.config import ConfigError


@dataclasses.dataclass(unsafe_hash=True)
class PPOConfig(OnPolicyConfig):
    """PPO hyperparameters (defaults: the MuJoCo settings of the PPO paper / CleanRL)."""

    epochs: int = 10
    """Passes over each rollout."""
    minibatches: int = 32
    """Minibatches per pass (minibatch size = rollout_steps * num_envs / minibatches)."""
    clip_coef: float = 0.2
    """Clip range of the probability ratio."""
    clip_value: bool = True
    """Clip the value loss around the rollout's values with clip_coef."""
    vf_coef: float = 0.5
    """Weight of the value loss (it matters through the joint gradient-norm clipping)."""

    def validate(self) -> None:
        super().validate()
        self._positive("epochs", "minibatches", "clip_coef", "vf_coef")

    def check_run(self, run) -> None:
        super().check_run(run)
        if self.rollout_steps * run.num_envs < self.minibatches:
            raise ConfigError(f"a rollout of {self.rollout_steps} steps x {run.num_envs} envs "
                              f"cannot be split into {self.minibatches} minibatches")


def clipped_surrogate_loss(ratio, adv, clip_coef: float):
    """-E[min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)]."""
    return -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip_coef, 1 + clip_coef) * adv))


def value_loss(v, v_old, target, clip_coef: float | None):
    """0.5 * E[(V - target)^2]; with clipping, the larger of that and the error of
    V_old + clip(V - V_old, -eps, eps)."""
    loss = (v - target) ** 2
    if clip_coef is not None:
        clipped = v_old + jnp.clip(v - v_old, -clip_coef, clip_coef)
        loss = jnp.maximum(loss, (clipped - target) ** 2)
    return 0.5 * jnp.mean(loss)


class PPO(OnPolicyAgent):
    """Immutable PPO agent; ``update`` does every epoch and minibatch in one jitted call."""

    METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
               "explained_variance", "policy_std")

    def _minibatch_step(self, mb: dict, lr_scale):
        cfg = self.cfg
        adv = standardize(mb["adv"]) if cfg.normalize_advantages else mb["adv"]

        def loss_fn(params):
            pi_params, v_params = params
            logp, entropy = self.log_prob(pi_params, mb["obs"], mb["action"])
            log_ratio = logp - mb["logp"]
            ratio = jnp.exp(log_ratio)
            pg = clipped_surrogate_loss(ratio, adv, cfg.clip_coef)
            v = self.value.apply_fn(v_params, mb["obs"])
            vl = value_loss(v, mb["value"], mb["target"], cfg.clip_coef if cfg.clip_value else None)
            ent = entropy.mean()
            info = {"policy_loss": pg, "value_loss": vl, "entropy": ent,
                    "approx_kl": jnp.mean(ratio - 1.0 - log_ratio),
                    "clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > cfg.clip_coef)}
            return pg - cfg.ent_coef * ent + cfg.vf_coef * vl, info

        grads, info = jax.grad(loss_fn, has_aux=True)((self.policy.params, self.value.params))
        g_pi, g_v = clip_grads(grads, cfg.max_grad_norm)
        agent = self.replace(policy=apply_grads(self.policy, g_pi, lr_scale),
                             value=apply_grads(self.value, g_v, lr_scale))
        return agent, info

    @partial(jax.jit, donate_argnums=0)
    def update(self, rollout: Rollout, lr_scale) -> tuple["PPO", dict]:
        cfg = self.cfg
        agent, obs, rewards, values, next_values = self.prepare(rollout)
        adv = gae(rewards, values, next_values, rollout.terminated, rollout.done, cfg.gamma,
                  cfg.gae_lambda)
        logp, _ = self.log_prob(self.policy.params, obs, rollout.action)
        flat = {"obs": obs, "action": rollout.action, "logp": logp, "adv": adv,
                "value": values, "target": adv + values}
        flat = jax.tree_util.tree_map(lambda x: x.reshape((-1,) + x.shape[2:]), flat)
        size = flat["adv"].shape[0]
        n_mb = min(cfg.minibatches, size)  # (a run's shorter last rollout may hold fewer)
        mb_size = size // n_mb
        key, *epoch_keys = jax.random.split(agent.key, cfg.epochs + 1)

        def epoch(agent, k):
            perm = jax.random.permutation(k, size)[: mb_size * n_mb]
            batches = jax.tree_util.tree_map(
                lambda x: x[perm].reshape((n_mb, mb_size) + x.shape[1:]), flat)
            return jax.lax.scan(lambda a, mb: a._minibatch_step(mb, lr_scale), agent, batches)

        agent, info = jax.lax.scan(epoch, agent, jnp.stack(epoch_keys))
        info = jax.tree_util.tree_map(jnp.mean, info)
        info["explained_variance"] = explained_variance(values, adv + values)
        info["policy_std"] = jnp.exp(agent.policy.params["params"]["log_std"]).mean()
        return agent.replace(key=key), info
