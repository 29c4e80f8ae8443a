"""Roll out a saved policy (or a uniform random one) and write a Minari dataset."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contrl.data.datasets import check_name, minari_root, write_minari
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
            which: str = "best", num_envs: int = 8, ref_episodes: int = 10) -> dict:
    """Write ``steps`` transitions of a policy as the Minari dataset ``name``.

    The policy is the run's ``which`` checkpoint (deterministic, plus Gaussian ``noise``), or
    uniform random actions with ``random``. The metadata records the env, the policy that made
    the data, its average episode return, and the reference scores for normalization: the
    random policy's average return (min) and the run's policy's deterministic return (max)."""
    from contrl.train import load_agent

    check_name(name)
    if (minari_root() / name).exists():
        raise ContrlError(f"dataset {name} already exists ({minari_root() / name})")
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
    rand = random_policy(action_dim, seed + 7)
    ref_min = evaluate(rand, env_id, ref_episodes, seed)["mean_return"]
    ref_max = None
    if random or agent is None:
        policy, meta["policy"] = random_policy(action_dim, seed), "uniform random"
    else:
        ref_max = evaluate(agent.eval_actions, env_id, ref_episodes, seed)["mean_return"]
        policy = noisy(agent.eval_actions, noise, seed)
        meta["policy"] = f"contrl {Path(run_dir).name} ({which} checkpoint)" + (
            f" + N(0, {noise}^2) noise" if noise > 0 else "")
    episodes = rollout_episodes(policy, env_id, steps, seed, num_envs)
    complete = [sum(e["rewards"]) for e in episodes if not e.get("cut")]
    meta["average_return"] = float(np.mean(complete)) if complete else None
    meta["ref_min_score"], meta["ref_max_score"] = ref_min, ref_max
    path = write_minari(name, episodes, env_id, meta, ref_min, ref_max)
    return {"name": name, "path": str(path), "episodes": len(episodes), "steps": steps,
            "average_return": meta["average_return"], "ref_min_score": ref_min,
            "ref_max_score": ref_max}

