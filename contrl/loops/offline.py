"""The offline loop: gradient steps on a fixed dataset, with evaluation in the environment,
then (for a config with ``online_steps`` > 0) online fine-tuning in the shared off-policy
loop, in ``<run>/online``.

Steps count gradient steps. The agent is used through ``contrl.agents.base.Agent``
(``fit_dataset`` once, on a fresh run: dataset statistics such as observation
normalization); its config provides ``dataset``, ``dataset_size``, ``batch_size``, ``gamma``
and ``steps_per_call`` (gradient steps per compiled call). Evaluations report the normalized
score (0 = random, 100 = expert) when the dataset has reference scores.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from contrl.data.datasets import load_dataset
from contrl.loops.common import Loop, Session, check_same_data, dataset_for_run, start
from contrl.run import online_phase_settings


class OfflineLoop(Loop):
    def __init__(self, run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                 algo: str = "<algo>"):
        super().__init__(run_dir, algo)
        self.dataset = load_dataset(algo_cfg.dataset, run_cfg.env, run_cfg.obs_keys,
                                    algo_cfg.dataset_action_units).head(
            algo_cfg.dataset_size)
        algo_cfg.check_dataset(self.dataset)  # before anything is built
        pool, self.agent, self.ckpt, state = start(run_cfg, algo_cfg, agent_cls, run_dir, resume)
        pool.close()  # offline: the env is only evaluated
        self.dataset = dataset_for_run(self.dataset, run_cfg, pool)
        # before the dataset is fitted: without reference scores there is no score, and the
        # Session refuses best_metric normalized_score
        self.run = Session(run_cfg, algo_cfg, ("normalized_score",) + agent_cls.METRICS, run_dir,
                           state, score=self.dataset.normalized_score if self.dataset.scored
                           else None)
        self.rng = run_cfg.stream("offline")
        if state is not None:
            check_same_data(state.get("dataset_fingerprint"), self.dataset, algo_cfg.dataset,
                            str(run_dir), "give the data it was trained on, or start a new run")
            self.rng.bit_generator.state = state["data_rng"]
        else:
            self.agent = self.agent.fit_dataset(self.dataset, algo_cfg)
        self.cfg = algo_cfg
        if state is None and len(self.dataset) < algo_cfg.batch_size:  # once set up
            print(f"note: {len(self.dataset)} transitions, fewer than a batch of "
                  f"{algo_cfg.batch_size}: every batch repeats them", file=sys.stderr)

    def checkpoint_parts(self):
        return None, {"data_rng": self.rng.bit_generator.state, "dataset": self.dataset.name,
                      "dataset_fingerprint": self.dataset.fingerprint}

    def iteration(self) -> None:
        k = min(self.cfg.steps_per_call, self.run.cfg.steps - self.run.step)  # steps asked, done
        self.agent, metrics = self.agent.update(
            self.dataset.sample(self.rng, self.cfg.batch_size, self.cfg.gamma, k))
        prev = self.run.step
        self.run.step += k
        self.after(prev, metrics)

    def __call__(self, stop=None) -> dict:
        """The offline phase, then the online one when configured (and not interrupted)."""
        summary = super().__call__(stop)
        if self.cfg.online_steps > 0 and not summary["interrupted"]:
            summary["online"] = train_online(self.run.cfg, self.cfg, type(self.agent),
                                             self.run_dir, self.agent, self.algo, stop,
                                             self.run.score)
        return summary


def train_offline(run_cfg, algo_cfg, agent_cls, run_dir: Path, resume: bool = False,
                  algo: str = "<algo>") -> dict:
    return OfflineLoop(run_cfg, algo_cfg, agent_cls, run_dir, resume, algo)()


def train_online(run_cfg, algo_cfg, agent_cls, run_dir: Path, agent, algo: str,
                 stop=None, score=None) -> dict:
    """The online phase after the offline one: ``online_steps`` env steps in <run>/online,
    starting from the offline agent (or resuming the online phase where it stopped), its
    evaluations scored as the offline phase's (``score``) even when it mixes in no data."""
    from contrl.loops.offpolicy import train_offpolicy

    online_dir = run_dir / "online"
    (online_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    online_cfg = dataclasses.replace(run_cfg, **online_phase_settings(algo_cfg.online_steps))
    resume = (online_dir / "checkpoints" / "latest.ckpt").exists()
    print(f"offline phase done; {'resuming' if resume else 'starting'} the online phase "
          f"({algo_cfg.online_steps} env steps) in {online_dir}")
    return train_offpolicy(online_cfg, algo_cfg, agent_cls, online_dir, resume, algo,
                           agent=None if resume else agent, stop=stop, score=score)
