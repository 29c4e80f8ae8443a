"""Imitation-seeded SAC: SAC whose actor starts as a behaviour-cloned policy and whose critics
start as a regression on the demonstrations' Monte-Carlo returns-to-go, optionally held near
the seeding policy by a decaying behaviour-cloning term.

The actor comes from a BC run (``seed_from``: its Gaussian head is SAC's actor network, with
the observation normalization folded into the first layer) or is cloned here from
``dataset``. Fitting the critics to the demonstrations' returns first keeps the first online
updates from dragging the seeded actor towards an untrained critic's argmax.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from contrl import config as C
from contrl.agents.base import td_loss
from contrl.agents.bc import BC, BCConfig
from contrl.agents.sac import SAC, SACConfig, actor_loss, sac_fields
from contrl.config import ConfigError
from contrl.data.batch import Batch
from contrl.data.datasets import check_same_data, load_dataset
from contrl.errors import CheckpointError, ContrlError
from contrl.nets import tanh_gaussian_sample
from contrl.run import Checkpoint, read_run_config


@dataclasses.dataclass
class SeededSACConfig(SACConfig):
    """Imitation-seeded SAC hyperparameters (SAC's, plus how the seeding is done)."""

    RETIRED = ("seed_with_dataset", "seed_log_std")
    READS_DATASET_ALONE = True
    PATH_FIELDS = SACConfig.PATH_FIELDS + ("seed_from",)

    seed_from: str = ""
    """A bc run (gaussian head, same hidden sizes) whose policy starts the actor; its dataset,
    if any, pre-fits the critics. Without it, dataset seeds: the actor is behaviour-cloned on
    it first."""
    pretrain_steps: int = 10_000
    """Gradient steps of behaviour cloning and of critic pre-fitting."""
    bc_weight: float = 0.0
    """Weight of a term pulling the actor's mean action towards the seeding policy's,
    decayed linearly to 0 over bc_decay_steps gradient steps (0: no term)."""
    bc_decay_steps: int = 100_000
    """Gradient steps over which bc_weight decays to 0."""
    bc_normalize_q: bool = False
    """With bc_weight: divide the actor's SAC objective by mean |Q| (not differentiated), as
    TD3+BC does, so that bc_weight weighs the BC term against an objective of size ~1 whatever
    the scale of the returns."""
    seed_actor_warmup: int = 10_000
    """The actor's learning rate ramps linearly from 0 to lr over this many gradient steps
    (Adam's first steps move every weight by about lr whatever the gradient's size, which
    undoes a cloned policy)."""

    def validate(self) -> None:
        super().validate()
        self._positive("bc_decay_steps")
        self._nonneg("pretrain_steps", "bc_weight", "seed_actor_warmup")

    def check_run(self, run) -> None:
        if not (self.seed_from or self.dataset):
            raise ConfigError("seeded_sac needs a seeding policy or data (--seed-from BC_RUN "
                              "or --dataset ID)")
        extra = run.added_inputs()
        if extra:
            raise ConfigError(f"seeded_sac seeds its networks on the data's plain observations: "
                              f"{', '.join(extra)} would change what they read")
        super().check_run(run)


def q_normalized(loss, q):
    """``loss`` / mean |min_i Q_i(s, a)|, the divisor not differentiated (TD3+BC's scaling)."""
    return loss / jax.lax.stop_gradient(jnp.mean(jnp.abs(q.min(0))) + 1e-6)


def bc_term(mean, seed_mean):
    """Squared distance between the actor's and the seeding policy's mean actions."""
    return jnp.mean(jnp.sum((jnp.tanh(mean) - jnp.tanh(jax.lax.stop_gradient(seed_mean))) ** 2, -1))


class SeededSAC(SAC):
    """SAC plus the frozen seeding policy (``bc_params``) and the decaying BC term."""

    bc_params: dict = None
    bc_weight: float = struct.field(pytree_node=False, default=0.0)
    bc_decay_steps: int = struct.field(pytree_node=False, default=1)
    bc_normalize_q: bool = struct.field(pytree_node=False, default=False)

    @classmethod
    def _build(cls, cfg: SeededSACConfig, obs_dim: int, action_dim: int, seed) -> "SeededSAC":
        fields = sac_fields(cfg, obs_dim, action_dim, seed, cfg.lr,
                            actor_warmup=cfg.seed_actor_warmup)
        return cls(**fields, bc_params=jax.tree_util.tree_map(jnp.copy, fields["actor"].params),
                   bc_weight=cfg.bc_weight, bc_decay_steps=cfg.bc_decay_steps,
                   bc_normalize_q=cfg.bc_normalize_q)

    def pretrain(self, cfg: SeededSACConfig, run_cfg) -> "SeededSAC":
        """Seed the actor (and the critics, if there are demonstrations; dict observations
        flattened in the run's ``obs_keys`` order)."""
        return seed_sac(self, cfg, run_cfg)

    def _actor_loss(self, params, batch: Batch, key: jax.Array):
        mean, log_std = self.actor.apply_fn(params, batch.obs)
        action, logp = tanh_gaussian_sample(mean, log_std, key)
        q = self.critic.apply_fn(self.critic.params, batch.obs, action)
        loss = actor_loss(logp, q, self.alpha)
        if self.bc_weight > 0 and self.bc_normalize_q:
            loss = q_normalized(loss, q)
        if self.bc_weight > 0:
            seed_mean = self.actor.apply_fn(self.bc_params, batch.obs)[0]
            w = self.bc_weight * jnp.maximum(0.0, 1.0 - self.grad_steps / self.bc_decay_steps)
            loss += w * bc_term(mean, seed_mean)
        return loss, logp


def load_bc_run(run_dir: str, env_id: str, obs_dim: int,
                action_dim: int) -> tuple[BC, dict, BCConfig]:
    """The best BC policy of a bc run on ``env_id``, the run's saved configuration and its BC
    config."""
    saved = read_run_config(Path(run_dir))
    if saved.get("algo") != "bc":
        raise ContrlError(f"--seed-from needs a bc run; {run_dir} is a "
                          f"{saved.get('algo', 'unknown')} run")
    bc_env = saved["run"].get("env")
    if bc_env != env_id:  # before its networks are read: their shapes would not fit
        raise ContrlError(f"{run_dir} imitates {bc_env}, not {env_id}")
    bc_cfg = C.build(BCConfig, saved.get("algo_config", {}), saved=True)
    path = Path(run_dir) / "checkpoints" / "best.ckpt"
    if not path.exists():
        path = path.with_name("latest.ckpt")
    template = BC.create(bc_cfg, obs_dim, action_dim, 0)
    try:
        return Checkpoint(path).restore_agent(template), saved, bc_cfg
    except CheckpointError as e:
        raise ContrlError(f"{run_dir}: {e}") from None


def check_bc_data(run_dir: str, saved: dict, bc_cfg: BCConfig, cfg: SeededSACConfig,
                  data) -> None:
    """Refuse to fit the critics on other transitions than the bc run ``run_dir`` learned from
    under the same dataset name (remade since). Compared where this reads the data as that run
    did (all of it, no inputs appended); a run without the record (an exported copy, or one from
    before fingerprints) is not compared."""
    run = saved.get("run", {})
    if (bc_cfg.dataset_size or bc_cfg.dataset_action_units != cfg.dataset_action_units
            or run.get("obs_keys") or run.get("prev_action") or run.get("prev_reward")
            or run.get("frame_stack", 1) != 1):
        return
    try:
        state = Checkpoint(Path(run_dir) / "checkpoints" / "latest.ckpt").state()
    except CheckpointError:
        return
    check_same_data(state.get("dataset_fingerprint"), data, bc_cfg.dataset,
                    f"the bc run {run_dir}",
                    "train the bc run again on this data, or give the data it learned from "
                    "with --dataset")


def actor_dims(actor_params) -> tuple[int, int]:
    """(obs_dim, action_dim) of a tanh-Gaussian actor's parameters (its last layer outputs the
    mean and the log std of each action dimension)."""
    mlp = actor_params["params"]["MLP_0"]
    layers = sorted(mlp, key=lambda k: int(k.split("_")[1]))
    return mlp[layers[0]]["kernel"].shape[0], mlp[layers[-1]]["bias"].shape[0] // 2


def seed_sac(agent: SeededSAC, cfg: SeededSACConfig, run_cfg) -> SeededSAC:
    """``agent`` with its actor (and critics, if there are demonstrations) seeded, for the run
    ``run_cfg`` (its env, observation keys and random streams)."""
    env_id, obs_keys = run_cfg.env, run_cfg.obs_keys
    dataset_name = cfg.dataset
    if cfg.seed_from:
        bc, saved, bc_cfg = load_bc_run(cfg.seed_from, env_id, *actor_dims(agent.actor.params))
        if not bc.gaussian:
            raise ContrlError(f"--seed-from needs a bc run with the gaussian head; "
                              f"{cfg.seed_from} is not one (train it with --head gaussian)")
        if tuple(bc_cfg.hidden) != tuple(cfg.hidden):
            raise ContrlError(f"{cfg.seed_from} has hidden layers {tuple(bc_cfg.hidden)}; this "
                              f"SAC has {tuple(cfg.hidden)} (set --hidden to match)")
        dataset_name = dataset_name or bc_cfg.dataset
    data = load_dataset(dataset_name, env_id, obs_keys, cfg.dataset_action_units
                        ) if dataset_name else None
    if cfg.seed_from and data is not None and dataset_name == bc_cfg.dataset:
        check_bc_data(cfg.seed_from, saved, bc_cfg, cfg, data)
    if not cfg.seed_from:
        # the Gaussian head: its network is SAC's actor
        bc = BC.create(BCConfig(head="gaussian", hidden=cfg.hidden, dataset=dataset_name),
                       data.obs_dim, data.action_dim, run_cfg.seed
                       ).fit_normalizer(data.observations)
        rng = run_cfg.stream("pretrain")
        for _ in range(max(1, cfg.pretrain_steps // 100)):
            bc, _ = bc.update(data.sample(rng, cfg.batch_size, cfg.gamma, 100))
    actor_params = bc.export_actor()
    agent = agent.replace(actor=agent.actor.replace(params=actor_params),
                          bc_params=jax.tree_util.tree_map(jnp.copy, actor_params))
    if data is not None and cfg.pretrain_steps > 0:
        agent = fit_critic(agent, data, cfg, run_cfg.stream("pretrain_critic"))
    return agent


def fit_critic(agent, data, cfg, rng: np.random.Generator):
    """Regress every critic on the demonstrations' discounted returns-to-go, then copy the
    result to the target critics."""
    rtg = data.returns_to_go(cfg.gamma)
    critic = agent.critic

    @jax.jit
    def steps(critic, obs, act, target):
        def one(critic, batch):
            o, a, t = batch
            loss, g = jax.value_and_grad(lambda p: td_loss(critic.apply_fn(p, o, a), t))(critic.params)
            return critic.apply_gradients(grads=g), loss
        return jax.lax.scan(one, critic, (obs, act, target))

    k = 100
    for _ in range(max(1, cfg.pretrain_steps // k)):
        i = rng.integers(0, len(data), (k, cfg.batch_size))
        critic, _ = steps(critic, data.observations[i], data.actions[i], rtg[i])
    return agent.replace(critic=critic,
                         target_critic=jax.tree_util.tree_map(jnp.copy, critic.params))
