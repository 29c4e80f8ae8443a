"""What every agent shares: the agent interface the loops rely on, the off-policy config,
the training-state helper, the TD loss and the K-step scan."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from contrl.config import AlgoConfig, ConfigError
from contrl.data.batch import Batch
from contrl.data.datasets import check_recorded_env, dataset_env
from contrl.policy import Carry, Stateless


@runtime_checkable
class Agent(Protocol):
    """What a training loop may call on an agent. Agents are immutable: every method that
    changes one returns the new agent. ``AgentBase`` gives the optional hooks their defaults.

    - ``create(cfg, obs_dim, action_dim, seed, num_envs=1)``: a fresh agent (a classmethod;
      agents with per-env statistics, e.g. PPO's return normalizer, size them by num_envs).
    - ``initial_carry(num_envs)``: the per-env state the policy carries from step to step
      (``()`` for feed-forward policies; see ``contrl.policy``).
    - ``sample_actions(obs, carry) -> (actions, carry, agent)``: exploratory actions (online
      loops), the agent returned because its random key moved.
    - ``eval_actions(obs, carry) -> (actions, carry)``: deterministic actions.
    - ``update(batch) -> (agent, metrics)``: one compiled call of learning; ``METRICS`` names
      the metrics it reports.
    - ``pretrain(cfg, run_cfg)``: once, before the first online step of a fresh run.
    - ``fit_dataset(dataset, cfg)``: once, before the first offline update of a fresh run.
    """

    METRICS: ClassVar[tuple[str, ...]]

    @classmethod
    def create(cls, cfg, obs_dim: int, action_dim: int, seed: int,
               num_envs: int = 1) -> "Agent": ...

    def initial_carry(self, num_envs: int) -> Carry: ...

    def sample_actions(self, obs, carry: Carry) -> tuple[Any, Carry, "Agent"]: ...

    def eval_actions(self, obs, carry: Carry) -> tuple[Any, Carry]: ...

    def update(self, batch) -> tuple["Agent", dict]: ...

    def pretrain(self, cfg, run_cfg) -> "Agent": ...

    def fit_dataset(self, dataset, cfg) -> "Agent": ...


class AgentBase(Stateless):
    """Defaults of ``Agent``'s optional parts: no carried state, no pretraining, no dataset
    statistics. Mixed into the agents' pytree classes (it has no fields)."""

    def pretrain(self, cfg, run_cfg):
        return self

    def fit_dataset(self, dataset, cfg):
        return self

    def sample_actions(self, obs, carry: Carry):
        raise TypeError(f"{type(self).__name__} cannot act online (it has no exploration policy)")


@dataclasses.dataclass
class OffPolicyConfig(AlgoConfig):
    """What every replay-buffer actor-critic shares (the online off-policy loop reads these)."""

    PATH_FIELDS = ("dataset",)

    lr: float = 3e-4
    """Adam learning rate of the actor and the critics (and SAC's entropy coefficient)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity in transitions."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak averaging rate of the target networks."""
    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each critic."""
    n_critics: int = 2
    """Critics in the ensemble; the TD target takes their minimum."""
    critic_layer_norm: bool = False
    """Layer normalization after each hidden layer of the critics."""
    weight_init: str = "lecun"
    """Initialization of the networks: lecun (Flax's default: kernels with std 1/sqrt(fan_in),
    zero biases) or torch (PyTorch's nn.Linear default: kernels sqrt(3) narrower, biases
    uniform in +-1/sqrt(fan_in))."""
    n_step: int = 1
    """Steps of real rewards in the TD target before bootstrapping (n-step returns) of replayed
    transitions; dataset transitions mixed in (offline_ratio) keep one-step targets, each
    with its own discount."""
    learning_starts: int = 10_000
    """Env steps before learning begins (uniform random actions unless random_warmup is off)."""
    random_warmup: bool = True
    """Act uniformly at random before learning_starts; off: the agent's own policy acts (for
    an imitation-seeded agent, so that the first data is the seeded policy's)."""
    utd_ratio: float = 1.0
    """Gradient steps per env step (update-to-data ratio); below 1 (e.g. 0.25) for agents
    whose every step learns from many samples, such as the recurrent ones' windows."""
    update_every: int = 8
    """Env steps between update calls; each call does utd_ratio * update_every * num_envs
    gradient steps (a whole number) in one compiled loop, so Python runs once per call."""
    dataset: str = ""
    """Offline data (Minari id, directory or HDF5 file) used by offline_ratio (and by SAC's
    imitation seeding)."""
    offline_ratio: float = 0.0
    """Share of every batch (of transitions, or of windows for the recurrent agents) drawn
    from dataset, the rest from the replay buffer (symmetric sampling as in RLPD: 0.5)."""
    dataset_action_units: str = "env"
    """Units of the actions in an HDF5 dataset without an action_units attribute: env (the
    env's own bounds, as D4RL stored them) or scaled (already in [-1, 1]). Minari datasets are
    always in env units."""

    LOOP_FIELDS = ("batch_size", "buffer_size", "gamma", "n_step", "learning_starts",
                   "random_warmup", "utd_ratio", "update_every", "dataset", "offline_ratio",
                   "dataset_action_units")
    READS_DATASET_ALONE = False  # True where dataset is used without offline_ratio

    def validate(self) -> None:
        self._in_range("lr", 0.0, 1.0, low_open=True)
        self._in_range("utd_ratio", 0.0, 1000.0, low_open=True)
        self._positive("batch_size", "buffer_size", "update_every",
                       "n_critics", "n_step")
        self._in_range("gamma", 0.0, 1.0)
        self._in_range("tau", 0.0, 1.0, low_open=True)
        self._nonneg("learning_starts")
        self._in_range("offline_ratio", 0.0, 0.99)
        self._widths("hidden")
        self._one_of("dataset_action_units", ("env", "scaled"))
        self._one_of("weight_init", ("lecun", "torch"))
        if self.batch_size > self.buffer_size:
            raise ConfigError(
                f"batch_size ({self.batch_size}) is larger than buffer_size ({self.buffer_size})"
            )

    def replay_batches(self, buffer, n: int, k: int, episode_limit: int | None):
        """``k`` batches of ``n`` replayed samples for one update call (recurrent agents
        draw windows of steps instead; ``episode_limit``: the env's time limit, if any)."""
        return buffer.sample(n, self.gamma, k, self.n_step)

    def dataset_batches(self, dataset, rng, n: int, k: int, episode_limit: int | None):
        """``k`` batches of ``n`` dataset samples to join the replayed ones (offline_ratio),
        drawn with ``rng``; the same kind of sample as ``replay_batches``."""
        return dataset.sample(rng, n, self.gamma, k)

    def check_episode_limit(self, episode_limit: int | None, num_envs: int) -> None:
        """Refuse, at set-up, an env time limit (None: none) these agents cannot train with
        on ``num_envs`` envs."""

    def updates_per_call(self, num_envs: int) -> int:
        """Gradient steps per update call: utd_ratio * update_every * num_envs."""
        k = self.utd_ratio * self.update_every * num_envs
        if abs(k - round(k)) > 1e-9 or round(k) < 1:
            raise ConfigError(f"utd_ratio * update_every * num_envs must be a whole number of "
                              f"gradient steps per update call, got {self.utd_ratio} * "
                              f"{self.update_every} * {num_envs} = {k:g}")
        return int(round(k))

    def check_env_steps(self, run) -> None:
        """Refuse env steps that the envs cannot share out evenly."""
        run.check_whole_env_steps()

    def check_new_run(self, run) -> None:
        check_dataset_env(self.dataset, run.env)
        if self.dataset and self.offline_ratio == 0 and not self.READS_DATASET_ALONE:
            raise ConfigError("--dataset is only read with --offline-ratio above 0 (the share of "
                              "every batch drawn from it, e.g. 0.5): give both, or neither")

    def check_run(self, run) -> None:
        self.check_env_steps(run)
        self.updates_per_call(run.num_envs)
        if self.offline_ratio > 0 and not self.dataset:
            raise ConfigError("offline_ratio needs --dataset")
        if self.buffer_size < 2 * run.num_envs:
            raise ConfigError("buffer_size must hold at least two rows per env")


def check_dataset_env(dataset: str, env_id: str) -> None:
    """Refuse, from its metadata alone and so before any run directory is made, a dataset
    recorded in another environment or task than ``env_id``."""
    if dataset:
        check_recorded_env(dataset, dataset_env(dataset), env_id)


_BUILDERS: dict = {}


def compiled_create(build, cfg, obs_dim: int, action_dim: int, seed: int):
    """``build(cfg, obs_dim, action_dim, seed)`` as one compiled call, compiled once per
    (builder, config, shapes); run op by op, network and optimizer init would compile dozens
    of tiny programs on every agent creation. Configs that differ only in fields the loop
    alone reads (``LOOP_FIELDS``) share one builder, so their agents have the same static
    parts (networks, optimizers) and share the compiled update too."""
    key = (build, cfg.build_key(), obs_dim, action_dim)
    if key not in _BUILDERS:
        _BUILDERS[key] = jax.jit(lambda s: build(cfg, obs_dim, action_dim, s))
    return _BUILDERS[key](jnp.asarray(seed, jnp.uint32))


def make_state(module, params, lr: float, grad_clip: float | None = None,
               warmup: int = 0) -> TrainState:
    """Adam (optionally after gradient-norm clipping); with ``warmup`` > 0 the learning rate
    ramps linearly from 0 to ``lr`` over that many steps."""
    tx = optax.adam(optax.linear_schedule(0.0, lr, warmup) if warmup > 0 else lr)
    if grad_clip:
        tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
    apply_fn = module.apply if module is not None else None
    return TrainState.create(apply_fn=apply_fn, params=params, tx=tx)


def td_loss(q: jax.Array, target: jax.Array) -> jax.Array:
    """0.5 * mean squared TD error, summed over the critic ensemble axis (q: (n, B))."""
    return 0.5 * jnp.sum(jnp.mean((q - target) ** 2, axis=-1))


def td_target(reward, discount, next_q):
    """r + discount * min_i Q_i'(s', a'); next_q: (n, B)."""
    return reward + discount * next_q.min(0)


def scan_updates(step_fn, agent, batches: Batch):
    """Run ``step_fn(agent, batch) -> (agent, metrics)`` over the K leading slices of
    ``batches`` in one compiled loop; returns the final agent and the metrics of the last step."""
    agent, metrics = jax.lax.scan(step_fn, agent, batches)
    return agent, jax.tree_util.tree_map(lambda m: m[-1], metrics)
