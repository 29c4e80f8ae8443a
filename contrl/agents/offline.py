"""What the offline RL agents (IQL, CQL, TD3+BC) share: their config fields and the
dataset statistics they carry (observation normalization, reward scaling).

Every offline agent is also an off-policy agent: after the offline phase it can continue
online (``online_steps``) in the shared off-policy loop, where the statistics fitted on the
dataset keep applying to what the env returns.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from contrl.agents.base import OffPolicyConfig
from contrl.config import ConfigError, flags
from contrl.data.batch import Batch

REWARD_NORMALIZATIONS = ("none", "returns", "antmaze")


@dataclasses.dataclass
class OfflineConfig(OffPolicyConfig):
    """Fields every offline RL algorithm has (besides the off-policy ones, used online)."""

    dataset_size: int = 0
    """Use only the first dataset_size transitions (0: all)."""
    normalize_obs: bool = True
    """Standardize observations with the dataset's mean and standard deviation."""
    reward_normalization: str = "none"
    """none; returns: rewards * 1000 / (max - min episode return of the dataset) (IQL's
    locomotion setting); antmaze: rewards - 1 (IQL's sparse-goal setting)."""
    steps_per_call: int = 1000
    """Gradient steps per compiled call in the offline phase (steps count gradient steps)."""
    online_steps: int = 0
    """After the offline phase, train online for this many env steps (in <run>/online), each
    batch mixing dataset and new transitions by offline_ratio."""
    offline_ratio: float = 0.5
    """Online phase: share of every batch drawn from the dataset (the rest from the online
    replay buffer)."""
    learning_starts: int = 5_000
    """Online phase: env steps collected by the offline policy before updates resume."""
    random_warmup: bool = False
    """Online phase: act uniformly at random before learning_starts (off: the offline policy
    acts from the first step)."""

    LOOP_FIELDS = OffPolicyConfig.LOOP_FIELDS + ("dataset_size", "normalize_obs",
                                                  "reward_normalization", "steps_per_call")
    ONLINE_FIELDS = ("offline_ratio", "learning_starts", "random_warmup", "utd_ratio",
                     "update_every", "buffer_size", "n_step", "exploration_noise", "noise_type",
                     "ou_theta")
    """Fields read only by the online phase (those the algorithm has): given for a run without
    one, they would do nothing."""
    ONLINE_RUN_FIELDS = ("num_envs",)
    """The run's fields read only by the online phase (the offline phase steps no env)."""
    UNUSED_FIELDS = ()
    """Inherited fields this algorithm does not read: refused where given."""
    HAS_ONLINE_PHASE = True
    READS_DATASET_ALONE = True

    def validate(self) -> None:
        super().validate()
        self._nonneg("dataset_size", "online_steps")
        self._positive("steps_per_call")
        if self.reward_normalization not in REWARD_NORMALIZATIONS:
            raise ConfigError(f"reward_normalization must be one of "
                              f"{', '.join(REWARD_NORMALIZATIONS)}, got '{self.reward_normalization}'")

    def check_given(self, given: dict) -> None:
        """Refuse the online phase's fields named in ``given`` when this run has no online
        phase: they would be ignored."""
        super().check_given(given)
        unused = [f for f in self.UNUSED_FIELDS if f in given]
        if unused:
            raise ConfigError(f"{flags(unused)}: not "
                              "used by this algorithm (see its --help)")
        names = {f.name for f in dataclasses.fields(self)} | set(self.ONLINE_RUN_FIELDS)
        fields = [f for f in self.ONLINE_FIELDS + self.ONLINE_RUN_FIELDS
                  if f in given and f in names]
        if not fields or self.online_steps:
            return
        named = ", ".join(("--no-" if given[f] is False else "--") + f.replace("_", "-")
                          for f in fields)
        remedy = ("give --online-steps, or drop them" if self.HAS_ONLINE_PHASE else
                  "it has no online phase: drop them")
        raise ConfigError(f"{named}: settings of the online phase, which this run does not "
                          f"have ({remedy})")

    def check_env_steps(self, run) -> None:
        """Steps count gradient steps here; the env steps are the online phase's."""
        if self.online_steps % run.num_envs:
            raise ConfigError(f"online_steps ({self.online_steps}) must be a multiple of "
                              f"num_envs ({run.num_envs}): each step steps every env once")

    def check_run(self, run) -> None:
        if not self.dataset:
            raise ConfigError("offline training needs --dataset (a Minari id, directory or "
                              "HDF5 file; `contrl datasets` lists local ones)")
        if self.online_steps and self.n_step > 1 and self.reward_normalization == "antmaze":
            raise ConfigError(f"n_step {self.n_step} with reward_normalization antmaze: its "
                              "r - 1 is applied once per sample, not once per step of an "
                              "n-step return (use n_step 1)")
        super().check_run(run)


def reward_transform(episode_returns: np.ndarray, kind: str) -> tuple[float, float]:
    """(scale, bias) such that training sees scale * r + bias."""
    if kind == "returns":
        spread = float(np.max(episode_returns) - np.min(episode_returns)) if len(episode_returns) else 0.0
        if spread <= 0:
            raise ConfigError("reward_normalization=returns needs at least two complete "
                              "episodes with different returns in the dataset")
        return 1000.0 / spread, 0.0
    if kind == "antmaze":
        return 1.0, -1.0
    return 1.0, 0.0


def check_sparse_rewards(rewards: np.ndarray, name: str) -> None:
    """The antmaze transform (r - 1) assumes a sparse goal reward: 1 at the goal, else 0."""
    odd = rewards[(rewards != 0) & (rewards != 1)]
    if len(odd):
        raise ConfigError(f"reward_normalization=antmaze is for sparse goal datasets (rewards 0 "
                          f"or 1); {name} has rewards from {float(rewards.min()):g} to "
                          f"{float(rewards.max()):g}: pick --reward-normalization returns or none")


class DataStats(struct.PyTreeNode):
    """Observation mean/std and reward scale/bias, fitted on the dataset and kept in the agent
    (hence in every checkpoint) so that evaluation and online data see the same transform."""

    obs_mean: jax.Array
    obs_std: jax.Array
    reward_scale: jax.Array
    reward_bias: jax.Array

    @classmethod
    def identity(cls, obs_dim: int) -> "DataStats":
        return cls(jnp.zeros(obs_dim, jnp.float32), jnp.ones(obs_dim, jnp.float32),
                   jnp.ones((), jnp.float32), jnp.zeros((), jnp.float32))

    @classmethod
    def fit(cls, dataset, normalize_obs: bool, reward_normalization: str) -> "DataStats":
        stats = cls.identity(dataset.obs_dim)
        if normalize_obs:
            stats = stats.replace(
                obs_mean=jnp.asarray(dataset.observations.mean(0), jnp.float32),
                obs_std=jnp.asarray(np.maximum(dataset.observations.std(0), 1e-3), jnp.float32))
        if reward_normalization == "antmaze":
            check_sparse_rewards(dataset.rewards, dataset.name)
        scale, bias = reward_transform(dataset.episode_returns, reward_normalization)
        return stats.replace(reward_scale=jnp.float32(scale), reward_bias=jnp.float32(bias))

    def obs(self, x):
        return (jnp.asarray(x, jnp.float32) - self.obs_mean) / self.obs_std

    def batch(self, b: Batch) -> Batch:
        return b._replace(obs=self.obs(b.obs), next_obs=self.obs(b.next_obs),
                          reward=b.reward * self.reward_scale + self.reward_bias)


def fit_stats(agent, dataset, cfg: OfflineConfig):
    """``agent`` with ``stats`` fitted on ``dataset`` as ``cfg`` says."""
    return agent.replace(stats=DataStats.fit(dataset, cfg.normalize_obs, cfg.reward_normalization))


class DataNormalized:
    """Mixed in before an online agent class (``class CQL(DataNormalized, SAC)``) whose
    pytree has a ``stats`` field: the statistics are fitted on the dataset, and observations
    (and rewards) go through them when the agent acts and learns."""

    def fit_dataset(self, dataset, cfg: OfflineConfig):
        return fit_stats(self, dataset, cfg)

    def eval_actions(self, obs, carry=()):
        return super().eval_actions(self.stats.obs(obs), carry)

    def sample_actions(self, obs, carry=()):
        return super().sample_actions(self.stats.obs(obs), carry)

    def _update_step(self, batch: Batch):
        return super()._update_step(self.stats.batch(batch))
