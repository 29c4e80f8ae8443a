"""MOPO's loop: the offline loop with a dynamics phase before it.

1. *Dynamics*: one iteration is one epoch of the ensemble's training on the dataset (a
   held-out split validates it, early stopping ends it); its losses per epoch go to
   ``<run>/dynamics/progress.csv`` (and ``dynamics/tb``), where ``step`` is the epoch. The
   trained ensemble is saved as ``<run>/dynamics/model.ckpt``. A run given ``dynamics`` (a
   previous run, or its model.ckpt) skips this phase. A checkpoint is written after every
   epoch, so an interrupted phase resumes at its last epoch.
2. *Policy*: each iteration is one compiled call: rollouts of the current policy in the
   model from ``rollout_batch_size`` dataset states into the model buffer (device arrays,
   saved in latest.ckpt), then ``rollout_every`` SAC steps on batches mixing dataset and
   model transitions. Steps count gradient steps.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import flax.serialization
import jax.numpy as jnp
import numpy as np

from contrl.agents.dynamics import (DynamicsTrainer, dynamics_path, model_arrays,
                                    saved_model_meta, spec_difference, split_dataset)
from contrl.data.model_buffer import ModelBuffer
from contrl.errors import ContrlError
from contrl.loops.common import check_finite, check_same_data
from contrl.loops.offline import OfflineLoop
from contrl.run import Checkpoint, Logger, save_checkpoint

DYNAMICS_METRICS = ("train_loss", "val_loss", "val_loss_elites", "epochs_since_improvement")
TRAINER_KEY = "dynamics_trainer"


def load_dynamics(source: str, template, dataset, given: str):
    """The ensemble saved at ``source``, in the structure of ``template`` (the agent's own
    Dynamics); refused unless it was trained on ``dataset`` (``given``: as the user named it)
    with the same shape."""
    meta = saved_model_meta(source)
    if (meta.get("dataset"), meta.get("rows")) != (dataset.name, len(dataset)):
        raise ContrlError(f"--dynamics {source} was trained on dataset {meta.get('dataset')} "
                          f"({meta.get('rows')} transitions), not {dataset.name} "
                          f"({len(dataset)} transitions)")
    wanted = {**dataclasses.asdict(template.spec), "hidden": list(template.spec.hidden)}
    diff = spec_difference(meta["spec"], wanted)
    if diff:
        raise ContrlError(f"--dynamics {source} has another shape: {diff}")
    check_same_data(meta.get("fingerprint"), dataset, given, f"--dynamics {source}",
                    "drop --dynamics to fit a new ensemble")
    return Checkpoint(dynamics_path(source)).restore_agent(template)


class MOPOLoop(OfflineLoop):
    def __init__(self, run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                 algo: str = "<algo>"):
        super().__init__(run_cfg, algo_cfg, agent_cls, run_dir, resume, algo)
        cfg, data = algo_cfg, self.dataset
        done = self.run.step
        if done % cfg.rollout_every and run_cfg.steps > done:
            raise ContrlError(f"{run_dir} ended at step {done}, between two model rollouts "
                              f"(every {cfg.rollout_every} steps): it cannot be extended "
                              "exactly; start a new run (--dynamics "
                              f"{run_dir} reuses its model)")
        self.agent = self.agent.with_env(run_cfg.env)
        self.buffer = ModelBuffer.create(cfg.model_buffer_size, data.obs_dim, data.action_dim)
        self.dyn_dir = self.run_dir / "dynamics"
        self.trainer, self.dyn_log = None, None
        state = self.ckpt.state() if self.ckpt is not None else None
        if state is not None and state["dynamics_done"]:
            self.buffer = self.buffer.load_state(self.ckpt.arrays("model_buffer/"))
        elif state is None and cfg.dynamics:
            self.agent = self.agent.replace(
                dynamics=load_dynamics(cfg.dynamics, self.agent.dynamics, data, cfg.dataset))
        else:
            train_rows, val_rows = split_dataset(data, cfg.dynamics_holdout,
                                                 run_cfg.stream("holdout"))
            x, y = model_arrays(data, train_rows)
            self.train_xy = (jnp.asarray(x), jnp.asarray(y))  # on the device once
            self.val_xy = tuple(map(jnp.asarray, model_arrays(data, val_rows)))
            self.trainer = DynamicsTrainer.create(self.agent.dynamics.spec, cfg.train_spec(),
                                                  x, y, run_cfg.seed)
            if state is not None:
                saved = self.ckpt.arrays(TRAINER_KEY)[TRAINER_KEY]
                self.trainer = flax.serialization.from_bytes(self.trainer, saved.tobytes())
            self.dyn_dir.mkdir(exist_ok=True)
            self.dyn_log = Logger(self.dyn_dir, DYNAMICS_METRICS, run_cfg.tensorboard,
                                  resume_step=int(self.trainer.epoch) if state else None)

    def checkpoint_parts(self):
        _, state = super().checkpoint_parts()
        if self.trainer is not None:
            blob = flax.serialization.to_bytes(self.trainer)
            arrays = {TRAINER_KEY: np.frombuffer(blob, np.uint8)}
        else:
            arrays = self.buffer.state()
        return arrays, {**state, "dynamics_done": self.trainer is None}

    def dynamics_epoch(self) -> None:
        """One epoch of the ensemble's training; at its end, keep and save the ensemble."""
        self.trainer, metrics = self.trainer.run_epoch(*self.train_xy, *self.val_xy)
        epoch = int(self.trainer.epoch)
        values = check_finite(metrics, 0, self.run_dir)
        self.dyn_log.log({"step": epoch, "time": self.run.clock(), **values})
        if self.trainer.finished():
            dynamics = self.trainer.result()
            best = np.asarray(self.trainer.best_loss)
            save_checkpoint(self.dyn_dir / "model.ckpt", dynamics, {
                "kind": "dynamics", "dataset": self.dataset.name, "rows": len(self.dataset),
                "fingerprint": self.dataset.fingerprint,
                "spec": dataclasses.asdict(dynamics.spec), "epochs": epoch,
                "elites": np.asarray(dynamics.elites).tolist(), "val_loss": best.tolist()})
            print(f"dynamics: {epoch} epochs, elites' validation error "
                  f"{np.sort(best)[:dynamics.spec.n_elites].mean():.4f}; saved to "
                  f"{self.dyn_dir / 'model.ckpt'}")
            self.agent = self.agent.replace(dynamics=dynamics)
            self.trainer = None
            self.dyn_log.close()
            self.dyn_log = None
        self.checkpoint()

    def position(self) -> str:
        if self.trainer is not None:
            return f"dynamics epoch {int(self.trainer.epoch)} (step {self.run.step})"
        return super().position()

    def iteration(self) -> None:
        if self.trainer is not None:
            return self.dynamics_epoch()
        cfg, data = self.cfg, self.dataset
        k = min(cfg.rollout_every, self.run.cfg.steps - self.run.step)  # steps asked, done
        start = data.observations[self.rng.integers(0, len(data), cfg.rollout_batch_size)]
        real = data.sample(self.rng, cfg.real_batch_size(), cfg.gamma, k)
        self.agent, self.buffer, metrics = self.agent.model_update(
            self.buffer, start, real, cfg.batch_size - cfg.real_batch_size(), cfg.gamma)
        prev = self.run.step
        self.run.step += k
        self.after(prev, metrics)

    def close(self) -> None:
        if self.dyn_log is not None:
            self.dyn_log.close()
