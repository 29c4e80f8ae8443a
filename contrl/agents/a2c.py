"""Advantage actor-critic (synchronous A2C) and the policy-gradient family around it.

Its knobs are config fields: reward-to-go on/off, a learned baseline on/off with its own
number of gradient steps, advantage normalization, and GAE lambda (1: Monte-Carlo). With
``use_baseline=false`` and ``reward_to_go=false`` it is REINFORCE: every step of an episode
is weighted by the discounted return of the whole episode (of its segment in the rollout).
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp

from contrl.agents.onpolicy import (OnPolicyAgent, OnPolicyConfig, Rollout, apply_grads,
                                    clip_grads, discounted_returns, episode_start_returns,
                                    explained_variance, gae, standardize)
from contrl.config import ConfigError, flags


@dataclasses.dataclass(unsafe_hash=True)
class A2CConfig(OnPolicyConfig):
    """A2C hyperparameters (defaults: Tianshou's MuJoCo A2C; presets set 16 envs)."""

    FORMER_DEFAULTS = {"eps_in_sqrt": True}  # optax's RMSprop before the field existed

    rollout_steps: int = 5
    """Env steps per environment in each rollout; batch = rollout_steps * num_envs."""
    lr: float = 7e-4
    """Learning rate of the policy and the value network."""
    optimizer: str = "rmsprop"
    """adam or rmsprop (both with eps 1e-5; see eps_in_sqrt)."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus in the policy loss."""
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian policy."""
    reward_to_go: bool = True
    """Weight each action by the return that follows it (else by the whole episode's return)."""
    use_baseline: bool = True
    """Subtract a learned state value from the returns (and bootstrap with it at cuts)."""
    baseline_steps: int = 1
    """Gradient steps on the value network per update (full batch)."""

    def validate(self) -> None:
        super().validate()
        self._positive("baseline_steps")

    def check_given(self, given: dict) -> None:
        super().check_given(given)
        unused = [f for f in ("baseline_steps", "gae_lambda") if f in given]
        if unused and not self.use_baseline:
            raise ConfigError(f"{flags(unused)}: not "
                              "used without a baseline (--no-use-baseline); drop it")


def policy_gradient_loss(logp, adv):
    """-E[log pi(a|s) * A]: its gradient is the policy-gradient estimate."""
    return -jnp.mean(logp * adv)


class A2C(OnPolicyAgent):
    """Immutable A2C agent; ``update`` is one compiled call per rollout."""

    METRICS = ("policy_loss", "value_loss", "entropy", "explained_variance", "policy_std")

    def advantages(self, rollout: Rollout, rewards, values, next_values):
        """(advantages, value targets) according to the reward_to_go/use_baseline knobs."""
        cfg = self.cfg
        if not cfg.use_baseline:
            values, next_values = jnp.zeros_like(values), jnp.zeros_like(next_values)
        targets = gae(rewards, values, next_values, rollout.terminated, rollout.done, cfg.gamma,
                      cfg.gae_lambda) + values
        if cfg.reward_to_go and cfg.use_baseline:
            return targets - values, targets
        returns = discounted_returns(rewards, next_values, rollout.terminated, rollout.done,
                                     cfg.gamma)
        if not cfg.reward_to_go:
            returns = episode_start_returns(returns, rollout.done)
        return returns - values, targets

    @partial(jax.jit, donate_argnums=0)
    def update(self, rollout: Rollout, lr_scale) -> tuple["A2C", dict]:
        cfg = self.cfg
        agent, obs, rewards, values, next_values = self.prepare(rollout)
        adv, targets = agent.advantages(rollout, rewards, values, next_values)
        adv = standardize(adv) if cfg.normalize_advantages else adv
        obs, action, adv, targets = (x.reshape((-1,) + x.shape[2:])
                                     for x in (obs, rollout.action, adv, targets))

        def pi_loss(params):
            logp, entropy = agent.log_prob(params, obs, action)
            pg = policy_gradient_loss(logp, adv)
            return pg - cfg.ent_coef * entropy.mean(), (pg, entropy.mean())

        grads, (pg, entropy) = jax.grad(pi_loss, has_aux=True)(agent.policy.params)
        policy = apply_grads(agent.policy, clip_grads(grads, cfg.max_grad_norm), lr_scale)

        def v_loss(params):
            return 0.5 * jnp.mean((agent.value.apply_fn(params, obs) - targets) ** 2)

        def baseline_step(value, _):
            loss, g = jax.value_and_grad(v_loss)(value.params)
            return apply_grads(value, clip_grads(g, cfg.max_grad_norm), lr_scale), loss

        value = agent.value
        vl = jnp.zeros(())
        if cfg.use_baseline:
            value, losses = jax.lax.scan(baseline_step, value, None, length=cfg.baseline_steps)
            vl = losses[0]
        info = {"policy_loss": pg, "value_loss": vl, "entropy": entropy,
                "explained_variance": explained_variance(values.reshape(-1), targets),
                "policy_std": jnp.exp(policy.params["params"]["log_std"]).mean()}
        return agent.replace(policy=policy, value=value), info
