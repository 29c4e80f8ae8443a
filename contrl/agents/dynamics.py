"""Learned dynamics: an ensemble of Gaussian models of (next obs - obs, reward) given
(obs, action), trained by Gaussian likelihood with a held-out split and early stopping, and
short imagined rollouts from it with a disagreement penalty on the reward (MOPO, Yu et al.
2020; the models as in PETS/MBPO).

- ``Dynamics``: the trained ensemble (one vmapped module), its input/target normalizers and
  the indices of its elites (the models with the lowest validation error).
- ``DynamicsTrainer``: the training state (parameters, optimizer, each model's best
  parameters and validation error so far, epochs without improvement); ``epoch`` is one
  compiled pass over the training rows.
- ``imagine``: ``horizon`` steps of a policy in the model from given states, each written
  into a ``ModelBuffer`` until its rollout terminates.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from flax.training.train_state import TrainState

from contrl.config import ConfigError
from contrl.data.batch import Batch
from contrl.data.model_buffer import ModelBuffer
from contrl.nets import GaussianEnsemble
from contrl.run import Checkpoint

IMPROVEMENT = 0.01  # a model improves when its validation error falls by more than 1%
LOGVAR_BOUND_WEIGHT = 0.01  # weight of the learned log-variance bounds in the loss (MBPO)


# ------------------------------------------------------------------------------- losses
def gaussian_nll(mean, logvar, target):
    """Gaussian negative log-likelihood up to constants and a factor 1/2:
    mean over rows and outputs of (mu - y)^2 / sigma^2 + log sigma^2, summed over the
    ensemble's models. mean, logvar: (n, B, d); target: (n, B, d) or (B, d)."""
    return jnp.sum(jnp.mean((mean - target) ** 2 * jnp.exp(-logvar) + logvar, axis=(-2, -1)))


def logvar_bound_loss(params):
    """weight * (sum max_logvar - sum min_logvar): keeps the learned bounds tight."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    total = 0.0
    for path, leaf in leaves:
        name = jax.tree_util.keystr(path)
        if "max_logvar" in name:
            total = total + jnp.sum(leaf)
        elif "min_logvar" in name:
            total = total - jnp.sum(leaf)
    return LOGVAR_BOUND_WEIGHT * total


def disagreement_penalty(std):
    """MOPO's uncertainty u(s, a) = max over models of the norm of the predicted standard
    deviation; std: (n, B, d) -> (B,)."""
    return jnp.max(jnp.linalg.norm(std, axis=-1), axis=0)


def mse_per_model(mean, target):
    """Mean squared error of each model's mean; (n, B, d) -> (n,)."""
    return jnp.mean((mean - target) ** 2, axis=(-2, -1))


def _moments(x: np.ndarray) -> tuple[jax.Array, jax.Array]:
    std = x.std(0)
    return (jnp.asarray(x.mean(0), jnp.float32),
            jnp.asarray(np.where(std < 1e-12, 1.0, std), jnp.float32))


def dynamics_path(source) -> Path:
    """Where a trained ensemble is: a run directory's dynamics/model.ckpt, or the file given."""
    path = Path(source)
    return path / "dynamics" / "model.ckpt" if path.is_dir() else path


def saved_model_meta(source) -> dict:
    """The metadata of the trained ensemble at ``source`` (see ``dynamics_path``)."""
    path = dynamics_path(source)
    if not path.is_file():
        raise ConfigError(f"--dynamics {source}: no trained dynamics model at {path}")
    meta = Checkpoint(path).meta
    if meta.get("kind") != "dynamics":
        raise ConfigError(f"--dynamics {source}: {path} is not a dynamics model")
    return meta


def spec_difference(saved: dict, wanted: dict) -> str:
    """'' when the saved ensemble's shape has every value of ``wanted``; else what differs."""
    return ", ".join(f"{k} {saved.get(k)} (this run: {v})" for k, v in wanted.items()
                     if saved.get(k) != v)


# ------------------------------------------------------------------------------ the model
@dataclasses.dataclass(frozen=True)
class DynamicsSpec:
    """The ensemble's shape: what a saved model must match to be reused."""

    obs_dim: int
    action_dim: int
    hidden: tuple[int, ...]
    n_models: int
    n_elites: int

    def net(self) -> GaussianEnsemble:
        return GaussianEnsemble(tuple(self.hidden), self.obs_dim + 1, self.n_models)


class Dynamics(struct.PyTreeNode):
    """A Gaussian ensemble over [next obs - obs, reward] with its normalizers and elites."""

    params: dict
    in_mean: jax.Array
    in_std: jax.Array
    out_mean: jax.Array
    out_std: jax.Array
    elites: jax.Array  # (n_elites,) int32
    spec: DynamicsSpec = struct.field(pytree_node=False)

    @classmethod
    @partial(jax.jit, static_argnums=(0, 1))  # one compiled call, not dozens of tiny ones
    def create(cls, spec: DynamicsSpec, key: jax.Array) -> "Dynamics":
        d_in, d_out = spec.obs_dim + spec.action_dim, spec.obs_dim + 1
        params = spec.net().init(key, jnp.zeros((1, d_in), jnp.float32))
        return cls(params, jnp.zeros(d_in), jnp.ones(d_in), jnp.zeros(d_out), jnp.ones(d_out),
                   jnp.arange(spec.n_elites, dtype=jnp.int32), spec)

    def normalize(self, x):
        """Model inputs [obs, action] standardized."""
        return (x - self.in_mean) / self.in_std

    def normalized_inputs(self, obs, action):
        return self.normalize(jnp.concatenate([obs, action], -1))

    def predict(self, obs, action, params=None):
        """Every model's mean and standard deviation of [next obs - obs, reward], in the
        data's units: (n, B, obs_dim + 1) each."""
        mean, logvar = self.spec.net().apply(self.params if params is None else params,
                                             self.normalized_inputs(obs, action))
        return mean * self.out_std + self.out_mean, jnp.exp(0.5 * logvar) * self.out_std

    def step(self, obs, action, key, penalty: float, done_fn: Callable | None):
        """One imagined step: a sample of a random elite (per row) gives the next observation
        and the reward, penalized by ``penalty`` * the ensemble's disagreement. Returns
        (next_obs, penalized reward, done, disagreement)."""
        mean, std = self.predict(obs, action)
        k_noise, k_pick = jax.random.split(key)
        sample = mean + std * jax.random.normal(k_noise, mean.shape)
        rows = jnp.arange(obs.shape[0])
        pick = self.elites[jax.random.randint(k_pick, rows.shape, 0, self.elites.shape[0])]
        chosen = sample[pick, rows]
        next_obs = obs + chosen[:, :-1]
        u = disagreement_penalty(std)
        done = done_fn(next_obs) if done_fn is not None else jnp.zeros(rows.shape, bool)
        return next_obs, chosen[:, -1] - penalty * u, done, u


def imagine(policy: Callable, dynamics: Dynamics, buffer: ModelBuffer, start_obs, key,
            horizon: int, penalty: float, gamma: float, done_fn: Callable | None):
    """``horizon`` steps of ``policy(obs, key) -> action`` in the model from ``start_obs``
    (B, obs_dim); each step's transitions are added to ``buffer`` while their rollout is
    alive (a terminal transition is added, with discount 0, then its rollout stops).
    Returns the buffer and, over the transitions added, the mean disagreement and mean
    (penalized) reward, and the mean rollout length."""

    def one(carry, key):
        obs, alive, buf = carry
        k_pi, k_model = jax.random.split(key)
        action = policy(obs, k_pi)
        next_obs, reward, done, u = dynamics.step(obs, action, k_model, penalty, done_fn)
        batch = Batch(obs, action, reward, gamma * (1.0 - done.astype(jnp.float32)), next_obs)
        buf = buf.add(batch, alive)
        w = alive.astype(jnp.float32)
        return (next_obs, alive & ~done, buf), (jnp.sum(u * w), jnp.sum(reward * w), jnp.sum(w))

    alive = jnp.ones(start_obs.shape[0], bool)
    (_, _, buffer), (u, r, n) = jax.lax.scan(one, (start_obs, alive, buffer),
                                              jax.random.split(key, horizon))
    kept = jnp.maximum(jnp.sum(n), 1.0)
    return buffer, {"model_penalty": jnp.sum(u) / kept, "model_reward": jnp.sum(r) / kept,
                    "rollout_length": jnp.sum(n) / start_obs.shape[0]}


# ----------------------------------------------------------------------------- training
@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """How the ensemble is trained (static: part of the compiled epoch)."""

    batch_size: int
    lr: float
    weight_decay: float
    max_epochs: int
    patience: int


def split_dataset(dataset, holdout: int, rng: np.random.Generator):
    """(train rows, validation rows): ``holdout`` random rows (at most a fifth of the data)
    held out, drawn with ``rng``."""
    n = len(dataset)
    n_val = min(holdout, n // 5)
    if n_val < 1:
        raise ConfigError(f"dataset {dataset.name} has {n} transitions: too few to hold out "
                          "a validation split for the dynamics model (at least 5)")
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def model_arrays(dataset, rows):
    """Inputs [obs, action] and targets [next obs - obs, reward] of the given rows."""
    x = np.concatenate([dataset.observations[rows], dataset.actions[rows]], 1)
    y = np.concatenate([dataset.next_observations[rows] - dataset.observations[rows],
                        dataset.rewards[rows, None]], 1)
    return x.astype(np.float32), y.astype(np.float32)


@partial(jax.jit, static_argnums=1)
def _train_state(params, train: TrainSpec) -> TrainState:
    """AdamW's state for ``params``, in one compiled call."""
    tx = optax.adamw(train.lr, weight_decay=train.weight_decay)
    return TrainState.create(apply_fn=None, params=params, tx=tx)


class DynamicsTrainer(struct.PyTreeNode):
    """The ensemble being trained, with early stopping's bookkeeping."""

    dynamics: Dynamics
    state: TrainState
    best_params: dict        # each model's parameters at its best validation error
    best_loss: jax.Array     # (n,) each model's best validation error
    epoch: jax.Array
    since_improved: jax.Array  # epochs since any model last improved by more than 1%
    key: jax.Array
    train: TrainSpec = struct.field(pytree_node=False)

    @classmethod
    def create(cls, spec: DynamicsSpec, train: TrainSpec, x: np.ndarray, y: np.ndarray,
               seed: int) -> "DynamicsTrainer":
        """A fresh ensemble with normalizers fitted on the training rows (x, y)."""
        key, k_init = jax.random.split(jax.random.PRNGKey(seed))
        dyn = Dynamics.create(spec, k_init)
        (in_mean, in_std), (out_mean, out_std) = _moments(x), _moments(y)
        dyn = dyn.replace(in_mean=in_mean, in_std=in_std, out_mean=out_mean, out_std=out_std)
        return cls(dyn, _train_state(dyn.params, train), dyn.params, jnp.full(spec.n_models, jnp.inf, jnp.float32),
                   jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), key, train)

    def finished(self) -> bool:
        return (int(self.epoch) >= self.train.max_epochs
                or int(self.since_improved) >= self.train.patience)

    def result(self) -> Dynamics:
        """The ensemble with each model at its best epoch, the elites its lowest errors."""
        n_elites = self.dynamics.spec.n_elites
        return self.dynamics.replace(params=self.best_params,
                                     elites=jnp.argsort(self.best_loss)[:n_elites].astype(jnp.int32))

    @jax.jit
    def run_epoch(self, x, y, val_x, val_y):
        """One pass over the training rows (x, y) in minibatches, each model in its own
        order; then each model's validation error on (val_x, val_y) and early stopping's
        update. Returns the trainer and the epoch's metrics."""
        dyn, spec = self.dynamics, self.dynamics.spec
        n, bs = spec.n_models, min(self.train.batch_size, x.shape[0])  # fewer rows: one batch
        steps = x.shape[0] // bs
        key, k_perm = jax.random.split(self.key)
        order = jax.vmap(lambda k: jax.random.permutation(k, x.shape[0]))(
            jax.random.split(k_perm, n))[:, :steps * bs].reshape(n, steps, bs).swapaxes(0, 1)
        xn, yn = dyn.normalize(x), (y - dyn.out_mean) / dyn.out_std
        net = GaussianEnsemble(tuple(spec.hidden), spec.obs_dim + 1, n, per_model=True)

        def loss_fn(params, idx):
            mean, logvar = net.apply(params, xn[idx])  # (n, B, d): each model its own rows
            return gaussian_nll(mean, logvar, yn[idx]) + logvar_bound_loss(params)

        def step(state, idx):
            loss, grads = jax.value_and_grad(loss_fn)(state.params, idx)
            return state.apply_gradients(grads=grads), loss

        state, losses = jax.lax.scan(step, self.state, order)
        val_mean, _ = spec.net().apply(state.params, dyn.normalize(val_x))
        val = mse_per_model(val_mean, (val_y - dyn.out_mean) / dyn.out_std)
        improved = (self.best_loss - val) / jnp.abs(self.best_loss) > IMPROVEMENT
        improved = improved | ~jnp.isfinite(self.best_loss)
        best_params = jax.tree_util.tree_map(
            lambda new, old: jnp.where(improved.reshape((n,) + (1,) * (new.ndim - 1)), new, old),
            state.params, self.best_params)
        best_loss = jnp.where(improved, val, self.best_loss)
        trainer = self.replace(
            dynamics=dyn.replace(params=state.params), state=state, best_params=best_params,
            best_loss=best_loss, epoch=self.epoch + 1, key=key,
            since_improved=jnp.where(jnp.any(improved), 0, self.since_improved + 1))
        elites = jnp.sort(best_loss)[:spec.n_elites]
        return trainer, {"train_loss": jnp.mean(losses), "val_loss": jnp.mean(val),
                         "val_loss_elites": jnp.mean(elites),
                         "epochs_since_improvement": trainer.since_improved}
