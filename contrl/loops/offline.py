"""The offline loop: gradient steps on a fixed dataset, with evaluation in the environment,
then (for agents that can act online and a config with ``online_steps`` > 0) online
fine-tuning in the shared off-policy loop, in ``<run>/online``.

Steps count gradient steps. An agent provides what the off-policy agents do (``create``,
``eval_actions``, ``update(batches)``, ``METRICS``) and optionally ``fit_dataset(dataset,
cfg)`` (called once, on a fresh run: dataset statistics such as observation normalization);
its config provides ``dataset``, ``batch_size``, ``gamma`` and ``steps_per_call`` (gradient
steps per compiled call). Evaluations report the normalized score (0 = random, 100 = expert)
when the dataset has reference scores.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from contrl.data.datasets import load_dataset
from contrl.loops.common import Session, StopFlag, start
from contrl.run import save_checkpoint


def train_offline(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                  algo: str = "<algo>") -> dict:
    dataset = load_dataset(algo_cfg.dataset, run_cfg.env).head(getattr(algo_cfg, "dataset_size", 0))
    pool, agent, _, state = start(run_cfg, algo_cfg, agent_cls, run_dir, resume)
    pool.close()  # offline: the env is only evaluated
    dataset.check_env(run_cfg.env, pool.obs_dim, pool.action_dim)
    rng = np.random.default_rng(run_cfg.seed)
    if state is not None:
        rng.bit_generator.state = state["data_rng"]
    elif hasattr(agent, "fit_dataset"):
        agent = agent.fit_dataset(dataset, algo_cfg)
    run = Session(run_cfg, algo_cfg, ("normalized_score",) + agent_cls.METRICS, run_dir, state,
                  score=dataset.normalized_score)

    def checkpoint():
        save_checkpoint(run_dir / "checkpoints" / "latest.ckpt", agent,
                        {"step": run.step, "kind": "full"}, None,
                        {**run.state(), "data_rng": rng.bit_generator.state,
                         "dataset": dataset.name})

    k = algo_cfg.steps_per_call
    try:
        with StopFlag() as stop:
            while not run.done() and not stop.raised:
                agent, metrics = agent.update(dataset.sample(rng, algo_cfg.batch_size,
                                                             algo_cfg.gamma, k))
                prev = run.step
                run.step += k
                run.after_steps(prev, agent, metrics, checkpoint)
            run.stopped(stop, checkpoint, algo)
    finally:
        run.close()
    summary = run.summary(stop.raised)
    if getattr(algo_cfg, "online_steps", 0) > 0 and not stop.raised:
        summary["online"] = train_online(run_cfg, algo_cfg, agent_cls, run_dir, agent, algo)
    return summary


def train_online(run_cfg, algo_cfg, agent_cls, run_dir: Path, agent, algo: str) -> dict:
    """The online phase after the offline one: ``online_steps`` env steps in <run>/online,
    starting from the offline agent (or resuming the online phase where it stopped)."""
    from contrl.loops.offpolicy import train_offpolicy

    online_dir = run_dir / "online"
    (online_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    online_cfg = dataclasses.replace(run_cfg, steps=algo_cfg.online_steps, stop_at_return=None)
    resume = (online_dir / "checkpoints" / "latest.ckpt").exists()
    print(f"offline phase done; {'resuming' if resume else 'starting'} the online phase "
          f"({algo_cfg.online_steps} env steps) in {online_dir}")
    return train_offpolicy(online_cfg, algo_cfg, agent_cls, online_dir, resume, algo,
                           agent=None if resume else agent)
