"""MOPO (Yu et al. 2020): model-based offline policy optimization.

A Gaussian dynamics ensemble is fitted to the dataset (``contrl.agents.dynamics``); then SAC
learns from batches mixing ``real_ratio`` dataset transitions with transitions imagined by
the model: every ``rollout_every`` gradient steps, ``rollout_batch_size`` rollouts of
``horizon`` steps of the current policy start from dataset states, their rewards penalized,

    r~(s, a) = r^(s, a) - lambda * max_i || Sigma_i(s, a) ||,

and go into a model replay buffer on the device. One compiled call does the rollouts and
the ``rollout_every`` SAC steps (sampling the model buffer inside it).
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
from flax import struct

from contrl.agents.base import compiled_create, scan_updates
from contrl.agents.dynamics import (Dynamics, DynamicsSpec, TrainSpec, imagine,
                                    dynamics_path, saved_model_meta, spec_difference)
from contrl.agents.offline import DataNormalized, DataStats, OfflineConfig
from contrl.agents.sac import SAC, SACConfig, sac_fields
from contrl.config import ConfigError, flags
from contrl.data.batch import Batch
from contrl.data.model_buffer import ModelBuffer
from contrl.envs.termination import TERMINATIONS, termination_fn
from contrl.errors import ContrlError
from contrl.nets import tanh_gaussian_sample
from contrl.run import read_run_config


# how the ensemble is fitted: unused when --dynamics reuses one
FIT_FIELDS = ("dynamics_lr", "dynamics_weight_decay", "dynamics_batch_size", "dynamics_epochs",
              "dynamics_patience", "dynamics_holdout")


def fit_settings(source) -> dict:
    """How the ensemble at ``source`` was fitted: the FIT_FIELDS in its run's config.json
    ({} when that is not known, e.g. a model.ckpt copied out of its run). A reusing run may
    leave them at their defaults or repeat them; other values would not be used."""
    try:
        algo = read_run_config(dynamics_path(source).parent.parent)["algo_config"]
    except (ContrlError, OSError):
        return {}
    return {k: algo[k] for k in FIT_FIELDS if k in algo}


@dataclasses.dataclass
class MOPOConfig(OfflineConfig, SACConfig):
    """MOPO hyperparameters (defaults: the paper's, with SAC's; the rollout horizon and the
    penalty per task are in presets/mopo.toml)."""

    HAS_ONLINE_PHASE = False
    UNUSED_FIELDS = ("steps_per_call",)  # rollout_every is its compiled call's length

    normalize_obs: bool = False
    """Standardize the policy's and critics' observations with the dataset's statistics
    (MOPO's SAC reads raw observations; the dynamics model always normalizes its own)."""
    horizon: int = 5
    """Steps of each model rollout (h)."""
    penalty: float = 1.0
    """Weight lambda of the uncertainty penalty on model rewards."""
    real_ratio: float = 0.05
    """Share of every SAC batch drawn from the dataset (the rest from the model buffer)."""
    rollout_batch_size: int = 50_000
    """Rollouts started from dataset states at every rollout."""
    rollout_every: int = 1000
    """Gradient steps between rollouts, also the gradient steps of one compiled call
    (mopo's steps_per_call: the field inherited from the offline agents is not used)."""
    model_buffer_size: int = 1_250_000
    """Model transitions kept (oldest dropped first); the paper keeps 5 rollouts' worth."""
    ensemble_size: int = 7
    """Dynamics models in the ensemble."""
    elites: int = 5
    """Models with the lowest validation error that generate rollouts."""
    dynamics_hidden: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden layer widths of each dynamics model (swish units)."""
    dynamics_lr: float = 1e-3
    """Adam learning rate of the dynamics models."""
    dynamics_weight_decay: float = 5e-5
    """Decoupled weight decay of the dynamics models (AdamW)."""
    dynamics_batch_size: int = 256
    """Transitions per dynamics gradient step (per model)."""
    dynamics_epochs: int = 1000
    """Most passes over the training rows (early stopping usually ends training before)."""
    dynamics_patience: int = 5
    """Stop once no model's validation error has improved by more than 1% for this many
    epochs; each model keeps its parameters of its best epoch."""
    dynamics_holdout: int = 5000
    """Dataset transitions held out to validate the dynamics models (at most a fifth of
    the dataset)."""
    dynamics: str = ""
    """Reuse the dynamics ensemble a previous mopo run trained (its run directory or its
    dynamics/model.ckpt) instead of training one; it must come from the same dataset and
    have the same shape."""

    LOOP_FIELDS = OfflineConfig.LOOP_FIELDS + (
        "real_ratio", "rollout_batch_size", "rollout_every", "model_buffer_size",
        *FIT_FIELDS, "dynamics")
    PATH_FIELDS = OfflineConfig.PATH_FIELDS + ("dynamics",)

    def validate(self) -> None:
        super().validate()
        self._positive("horizon", "rollout_batch_size", "rollout_every", "model_buffer_size",
                       "ensemble_size", "elites", "dynamics_lr", "dynamics_batch_size",
                       "dynamics_epochs", "dynamics_patience", "dynamics_holdout")
        self._nonneg("penalty", "dynamics_weight_decay")
        self._in_range("real_ratio", 0.0, 1.0)
        real = self.real_batch_size()
        if not 0 < real < self.batch_size:  # a batch of one source only: nothing to mix
            raise ConfigError(f"real_ratio {self.real_ratio} of batch_size {self.batch_size} "
                              f"gives {real} dataset rows per batch: mopo mixes dataset and "
                              f"model rows, so give real_ratio and batch_size with at least "
                              f"one of each")
        self._in_range("dynamics_lr", 0.0, 1.0, low_open=True)
        if self.elites > self.ensemble_size:
            raise ConfigError(f"elites ({self.elites}) must be at most ensemble_size "
                              f"({self.ensemble_size})")
        self._widths("dynamics_hidden")
        if self.model_buffer_size < self.rollout_batch_size:
            raise ConfigError(f"model_buffer_size ({self.model_buffer_size}) must hold at "
                              f"least one step of rollout_batch_size ({self.rollout_batch_size})")

    def check_run(self, run) -> None:
        super().check_run(run)
        if self.online_steps:
            raise ConfigError("mopo has no online phase (online_steps must be 0)")
        if termination_fn(run.env) is not None and not run.env_as_is():
            raise ConfigError(f"mopo's termination rule for {run.env} reads its plain "
                              "observations: no frame_stack, prev_action, prev_reward or "
                              "action_repeat")

    def check_dataset(self, dataset) -> None:
        if termination_fn(dataset.env_id) is None and dataset.terminals.any():
            raise ContrlError(f"{self.dataset} has terminations ({int(dataset.terminals.sum())}), "
                              f"but contrl knows no termination rule for {dataset.env_id}: mopo's "
                              "model rollouts would run on through them (rules: "
                              f"{', '.join(TERMINATIONS)})")

    def record_sources(self, given: set[str]) -> None:
        """A reused ensemble's fit settings (its run's, where known) are recorded instead of
        defaults that were never used: a report then labels the run by how its model was
        fitted. A setting given (the default or the source's) is checked by check_new_run."""
        if self.dynamics:
            for name, value in fit_settings(self.dynamics).items():
                if name not in given:
                    setattr(self, name, value)

    def check_new_run(self, run) -> None:
        """--dynamics is read when the run starts (a resumed run holds its copy: the source
        may since have moved)."""
        super().check_new_run(run)
        if self.dynamics:  # the shape now; the dataset once it is loaded
            saved = saved_model_meta(self.dynamics)  # refuses a path without one
            fitted = fit_settings(self.dynamics)
            unused = [f.name for f in dataclasses.fields(self) if f.name in FIT_FIELDS
                      and getattr(self, f.name) not in (f.default, fitted.get(f.name))]
            if unused:
                raise ConfigError(
                    f"--dynamics {self.dynamics} reuses a fitted ensemble, so "
                    f"{flags(unused)} would not be used "
                    "(drop them, or drop --dynamics to fit a new ensemble)")
            diff = spec_difference(saved["spec"], {
                "hidden": list(self.dynamics_hidden), "n_models": self.ensemble_size,
                "n_elites": self.elites})
            if diff:
                raise ConfigError(f"--dynamics {self.dynamics} has another shape: {diff}")

    def dynamics_spec(self, obs_dim: int, action_dim: int) -> DynamicsSpec:
        return DynamicsSpec(obs_dim, action_dim, tuple(self.dynamics_hidden),
                            self.ensemble_size, self.elites)

    def train_spec(self) -> TrainSpec:
        return TrainSpec(self.dynamics_batch_size, self.dynamics_lr, self.dynamics_weight_decay,
                         self.dynamics_epochs, self.dynamics_patience)

    def real_batch_size(self) -> int:
        """Dataset transitions in every SAC batch."""
        return round(self.real_ratio * self.batch_size)


class MOPO(DataNormalized, SAC):
    """SAC with dataset statistics, a dynamics ensemble (``dynamics``, fitted by the loop
    before the first update) and ``model_update``."""

    METRICS = SAC.METRICS + ("model_reward", "model_penalty", "rollout_length",
                             "model_buffer_size")

    stats: DataStats = None
    dynamics: Dynamics = None
    horizon: int = struct.field(pytree_node=False, default=5)
    penalty: float = struct.field(pytree_node=False, default=1.0)
    env_id: str = struct.field(pytree_node=False, default="")

    @classmethod
    def create(cls, cfg: MOPOConfig, obs_dim: int, action_dim: int, seed: int,
               num_envs: int = 1) -> "MOPO":
        return compiled_create(cls._build, cfg, obs_dim, action_dim, seed)

    @classmethod
    def _build(cls, cfg: MOPOConfig, obs_dim: int, action_dim: int, seed) -> "MOPO":
        fields = sac_fields(cfg, obs_dim, action_dim, seed, cfg.lr)
        key, k_dyn = jax.random.split(fields["key"])
        return cls(**{**fields, "key": key}, stats=DataStats.identity(obs_dim),
                   dynamics=Dynamics.create(cfg.dynamics_spec(obs_dim, action_dim), k_dyn),
                   horizon=cfg.horizon, penalty=cfg.penalty)

    def with_env(self, env_id: str) -> "MOPO":
        """The agent knowing which env's termination rule its rollouts follow."""
        return self.replace(env_id=env_id)

    def _policy(self, obs, key):
        mean, log_std = self.actor.apply_fn(self.actor.params, self.stats.obs(obs))
        return tanh_gaussian_sample(mean, log_std, key)[0]

    @partial(jax.jit, static_argnums=(4, 5), donate_argnums=(0, 1))
    def model_update(self, buffer: ModelBuffer, start_obs, real: Batch, n_model: int,
                     gamma: float):
        """Rollouts of the current policy in the model from ``start_obs`` into ``buffer``
        (discount ``gamma``), then K SAC steps, one per leading slice of ``real`` (dataset
        transitions), each batch completed with ``n_model`` transitions sampled from the
        buffer. Returns the agent, the buffer and the metrics of the last step with the
        rollouts'. (Batch size and gamma come from the loop: configs differing only in
        those share one agent build.)"""
        key, k_roll, k_sample = jax.random.split(self.key, 3)
        buffer, info = imagine(self._policy, self.dynamics, buffer, start_obs, k_roll,
                               self.horizon, self.penalty, gamma, termination_fn(self.env_id))
        k = real.reward.shape[0]
        keys = jax.random.split(k_sample, k)

        def step(agent, inputs):
            real_b, key = inputs
            model_b = buffer.sample(key, n_model)
            batch = Batch(*(jnp.concatenate([a, b], 0) for a, b in zip(real_b, model_b)))
            return agent._update_step(batch)

        agent, metrics = scan_updates(step, self.replace(key=key), (real, keys))
        return agent, buffer, {**metrics, **info, "model_buffer_size": buffer.size}
