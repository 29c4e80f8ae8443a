"""The DAgger loop: each round rolls out the mixture policy (the expert's action with
probability beta, the learner's otherwise, decided per step and env), labels every visited
state with the expert's action, adds it to the aggregated data, and trains the learner on all
of it. Steps count expert labels; a checkpoint after each round holds the aggregated data."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contrl.agents.base import Batch
from contrl.agents.dagger import beta
from contrl.errors import ContrlError
from contrl.loops.common import Session, StopFlag, start
from contrl.run import save_checkpoint


def train_dagger(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                 algo: str = "dagger") -> dict:
    from contrl.train import load_agent

    expert, expert_run, _, _ = load_agent(algo_cfg.expert, "best")
    if expert_run.env != run_cfg.env:
        raise ContrlError(f"the expert {algo_cfg.expert} was trained on {expert_run.env}, "
                          f"not {run_cfg.env}")
    pool, agent, ckpt, state = start(run_cfg, algo_cfg, agent_cls, run_dir, resume)
    rng = np.random.default_rng(run_cfg.seed)
    obs_data = np.zeros((0, pool.obs_dim), np.float32)
    act_data = np.zeros((0, pool.action_dim), np.float32)
    if ckpt is not None:
        rng.bit_generator.state = state["rng"]
        arrays = ckpt.arrays("data/")
        obs_data, act_data = arrays["data/obs"], arrays["data/actions"]
    run = Session(run_cfg, algo_cfg, ("beta",) + agent_cls.METRICS, run_dir, state)

    def checkpoint():
        save_checkpoint(run_dir / "checkpoints" / "latest.ckpt", agent,
                        {"step": run.step, "kind": "full"},
                        {"data/obs": obs_data, "data/actions": act_data},
                        {**run.state(), "rng": rng.bit_generator.state, "pool": pool.state()})

    n, per_round = pool.n, algo_cfg.steps_per_round
    try:
        with StopFlag() as stop:
            while not run.done() and not stop.raised:
                b = beta(algo_cfg.beta_schedule, algo_cfg.beta_decay, run.step // per_round)
                new_obs, new_act = [], []
                for _ in range(-(-per_round // n)):
                    obs = pool.obs.copy()
                    label = np.asarray(expert.eval_actions(obs), np.float32)
                    mine = np.asarray(agent.eval_actions(obs), np.float32) if b < 1 else label
                    act = np.where(rng.random((n, 1)) < b, label, mine)
                    new_obs.append(obs)
                    new_act.append(label)
                    next_obs, _, term, trunc = pool.step(act)
                    run.finished(pool.advance(next_obs, term | trunc))
                new_obs = np.concatenate(new_obs)[:per_round]
                first_round = len(obs_data) == 0
                obs_data = np.concatenate([obs_data, new_obs])
                act_data = np.concatenate([act_data, np.concatenate(new_act)[:per_round]])
                if first_round and hasattr(agent, "fit_normalizer"):
                    agent = agent.fit_normalizer(obs_data)
                k = algo_cfg.update_every
                metrics = {}
                for _ in range(max(1, algo_cfg.updates_per_round // k)):
                    i = rng.integers(0, len(obs_data), (k, algo_cfg.batch_size))
                    dummy = np.zeros(i.shape, np.float32)
                    agent, metrics = agent.update(Batch(obs_data[i], act_data[i], dummy, dummy,
                                                        obs_data[i]))
                prev = run.step
                run.step += per_round
                run.after_steps(prev, agent, {**metrics, "beta": b}, checkpoint)
            run.stopped(stop, checkpoint, algo)
    finally:
        run.close()
        pool.close()
    return run.summary(stop.raised)
