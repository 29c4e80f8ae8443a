"""The offline loop: gradient steps on a fixed dataset, with evaluation in the environment.

Steps count gradient steps. An agent provides what the off-policy agents do (``create``,
``eval_actions``, ``update(batches)``, ``METRICS``), optionally ``fit_normalizer(observations)``
(called once, on a fresh run, with the dataset's observations); its config provides
``dataset``, ``batch_size``, ``gamma`` and ``update_every`` (gradient steps per compiled call).
Evaluations report the normalized score (0 = random, 100 = expert) when the dataset has
reference scores.
"""
from __future__ import annotations

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
    elif hasattr(agent, "fit_normalizer"):
        agent = agent.fit_normalizer(dataset.observations)
    run = Session(run_cfg, algo_cfg, ("normalized_score",) + agent_cls.METRICS, run_dir, state,
                  score=dataset.normalized_score)

    def checkpoint():
        save_checkpoint(run_dir / "checkpoints" / "latest.ckpt", agent,
                        {"step": run.step, "kind": "full"}, None,
                        {**run.state(), "data_rng": rng.bit_generator.state,
                         "dataset": dataset.name})

    k = algo_cfg.update_every
    try:
        with StopFlag() as stop:
            while run.step < run_cfg.steps and not stop.raised:
                agent, metrics = agent.update(dataset.sample(rng, algo_cfg.batch_size,
                                                             algo_cfg.gamma, k))
                prev = run.step
                run.step += k
                run.after_steps(prev, agent, metrics, checkpoint)
            run.stopped(stop, checkpoint, algo)
    finally:
        run.close()
    return run.summary(stop.raised)
