"""Roll out a saved policy (or a uniform random one) and write a Minari dataset."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contrl.data.datasets import (check_name, dataset_metadata, load_dataset, minari_root,
                                  write_minari)
from contrl.envs import EnvPool
from contrl.errors import ContrlError
from contrl.evaluate import evaluate


def random_policy(action_dim: int, seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs: rng.uniform(-1.0, 1.0, (len(obs), action_dim)).astype(np.float32)


def noisy(policy, noise: float, seed: int):
    """The policy's deterministic action plus Gaussian noise of std ``noise``, clipped."""
    if noise <= 0:
        return policy
    rng = np.random.default_rng(seed)

    def act(obs):
        a = np.asarray(policy(obs))
        return np.clip(a + noise * rng.standard_normal(a.shape), -1.0, 1.0).astype(np.float32)
    return act


def rollout_episodes(policy, env_id: str, steps: int, seed: int, num_envs: int = 8) -> list[dict]:
    """Exactly ``steps`` transitions from ``num_envs`` envs in lockstep, as episodes (dicts of
    observations (T+1, the real final one last), actions, rewards, terminations, truncations).
    Episodes still running when the budget is reached end with a truncation."""
    pool = EnvPool(env_id, num_envs, seed)
    open_eps = [_new_episode(o) for o in pool.obs]
    done_eps: list[dict] = []
    count = 0
    while count < steps:
        actions = np.asarray(policy(pool.obs), np.float32)
        next_obs, reward, term, trunc = pool.step(actions)
        take = min(num_envs, steps - count)
        for i in range(take):
            ep = open_eps[i]
            ep["actions"].append(actions[i])
            ep["rewards"].append(float(reward[i]))
            ep["terminations"].append(bool(term[i]))
            ep["truncations"].append(bool(trunc[i]))
            ep["observations"].append(next_obs[i])
        count += take
        done = term | trunc
        done[take:] = False
        pool.advance(next_obs, done)
        for i in np.flatnonzero(done):
            done_eps.append(open_eps[i])
            open_eps[i] = _new_episode(pool.obs[i])
    pool.close()
    for ep in open_eps:  # cut by the budget: they end with a truncation
        if ep["rewards"]:
            ep["truncations"][-1] = True
            ep["cut"] = True
            done_eps.append(ep)
    return done_eps


def _new_episode(obs) -> dict:
    return {"observations": [obs], "actions": [], "rewards": [], "terminations": [],
            "truncations": []}


def collect(run_dir: str | None, name: str, steps: int, noise: float = 0.0,
            random: bool = False, env_id: str | None = None, seed: int = 0,
            which: str = "best", num_envs: int = 8, ref_episodes: int = 10,
            ref_from: str | None = None) -> dict:
    """Write ``steps`` transitions of a policy as the Minari dataset ``name``.

    The policy is the run's ``which`` checkpoint (deterministic, plus Gaussian ``noise``), or
    uniform random actions with ``random``. The metadata records the env, the policy that made
    the data, its average episode return, and the reference scores for normalization: the
    random policy's average return (min) and the run's policy's deterministic return (max), or
    with ``ref_from`` those of another dataset (e.g. a medium dataset takes the expert's)."""
    from contrl.train import load_agent

    _check_new(name)
    refs = reference_scores(ref_from) if ref_from else None
    if steps <= 0:
        raise ContrlError(f"steps must be positive, got {steps}")
    meta: dict = {"noise": noise, "seed": seed}
    agent = None
    if run_dir is not None:
        agent, run_cfg, algo_cfg, ckpt_meta = load_agent(run_dir, which)
        if env_id is not None and env_id != run_cfg.env:
            raise ContrlError(f"{run_dir} was trained on {run_cfg.env}, not {env_id}")
        env_id = run_cfg.env
        meta.update(run=str(Path(run_dir).resolve()), checkpoint=which,
                    checkpoint_step=ckpt_meta.get("step"))
    if env_id is None:
        raise ContrlError("a random dataset needs --env")
    from contrl.envs import make_env
    probe = make_env(env_id)
    action_dim = probe.action_space.shape[0]
    probe.close()
    if refs is None:
        rand = random_policy(action_dim, seed + 7)
        ref_min = evaluate(rand, env_id, ref_episodes, seed)["mean_return"]
        ref_max = None if random or agent is None else evaluate(
            agent.eval_actions, env_id, ref_episodes, seed)["mean_return"]
    else:
        ref_min, ref_max = refs
        meta["references_from"] = ref_from
    if random or agent is None:
        policy, meta["policy"] = random_policy(action_dim, seed), "uniform random"
    else:
        policy = noisy(agent.eval_actions, noise, seed)
        meta["policy"] = f"contrl {Path(run_dir).name} ({which} checkpoint)" + (
            f" + N(0, {noise}^2) noise" if noise > 0 else "")
    episodes = rollout_episodes(policy, env_id, steps, seed, num_envs)
    return _write(name, episodes, env_id, meta, ref_min, ref_max)


def _check_new(name: str) -> None:
    check_name(name)
    if (minari_root() / name).exists():
        raise ContrlError(f"dataset {name} already exists ({minari_root() / name})")


def _write(name, episodes, env_id, meta, ref_min, ref_max) -> dict:
    complete = [float(np.sum(e["rewards"])) for e in episodes if not e.get("cut")]
    meta["average_return"] = float(np.mean(complete)) if complete else None
    path = write_minari(name, episodes, env_id, meta, ref_min, ref_max)
    load_dataset(path, env_id)  # builds the flat copy that makes later loads fast
    return {"name": name, "path": str(path), "episodes": len(episodes),
            "steps": int(sum(len(e["rewards"]) for e in episodes)),
            "average_return": meta["average_return"], "ref_min_score": ref_min,
            "ref_max_score": ref_max}


def reference_scores(name: str) -> tuple[float | None, float | None]:
    """(ref_min, ref_max) recorded in a local dataset's metadata."""
    meta = dataset_metadata(name)
    return meta.get("ref_min_score"), meta.get("ref_max_score")


def export_buffer(run_dir: str, name: str, which: str = "latest",
                  ref_from: str | None = None) -> dict:
    """Write the replay buffer saved in a run's ``which`` checkpoint as the dataset ``name``
    (D4RL's "replay" datasets: everything the run had collected, its warm-up included)."""
    from contrl.data.replay import ReplayBuffer
    from contrl.run import Checkpoint
    from contrl.train import run_configs

    _check_new(name)
    run_cfg, algo_cfg = run_configs(run_dir)
    ckpt = Checkpoint(Path(run_dir) / "checkpoints" / f"{which}.ckpt")
    arrays = ckpt.arrays("buffer/")
    if not arrays:
        raise ContrlError(f"{ckpt.path} holds no replay buffer (only full checkpoints of "
                          "off-policy runs do)")
    obs_dim, action_dim = arrays["buffer/obs"].shape[-1], arrays["buffer/action"].shape[-1]
    buffer = ReplayBuffer(algo_cfg.buffer_size, obs_dim, action_dim, run_cfg.num_envs)
    buffer.load_state(arrays, buffer.rng.bit_generator.state)
    refs = reference_scores(ref_from) if ref_from else (None, None)
    meta = {"run": str(Path(run_dir).resolve()), "checkpoint": which,
            "checkpoint_step": ckpt.meta.get("step"),
            "policy": f"replay buffer of contrl {Path(run_dir).name} ({which} checkpoint)"}
    if ref_from:
        meta["references_from"] = ref_from
    return _write(name, buffer.episodes(), run_cfg.env, meta, *refs)


def concat(sources: list[str], name: str) -> dict:
    """The datasets ``sources``, one after the other, as the dataset ``name`` (e.g.
    medium-expert); reference scores are the first source's."""
    _check_new(name)
    parts = [load_dataset(s) for s in sources]
    envs = {p.env_id for p in parts}
    if len(envs) != 1:
        raise ContrlError(f"cannot concatenate datasets of different envs ({', '.join(map(str, envs))})")
    episodes = [ep for p in parts for ep in p.episodes()]
    meta = {"sources": list(sources), "policy": " + ".join(sources)}
    return _write(name, episodes, parts[0].env_id, meta, parts[0].ref_min_score,
                  parts[0].ref_max_score)

