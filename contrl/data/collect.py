"""Roll out a policy (a saved agent or a uniform random one) and write a Minari dataset."""
from __future__ import annotations

import sys

import numpy as np

from contrl.data.datasets import (check_name, dataset_location, dataset_metadata, load_dataset,
                                  minari_root, recorded_env, same_env_task, write_minari)
from contrl.data.replay import ReplayBuffer
from contrl.envs import EnvPool
from contrl.envs.make import flattening_keys, raw_action_space
from contrl.errors import ContrlError
from contrl.evaluate import evaluate
from contrl.policy import NoisyPolicy, Policy, RandomPolicy, SampledPolicy, reset_carry
from contrl.seeding import stream_seed


def rollout_episodes(policy: Policy, env_id: str, steps: int, seed: int, num_envs: int = 8,
                     env_kwargs: dict | None = None, on_progress=None) -> list[dict]:
    """Exactly ``steps`` transitions from ``num_envs`` envs in lockstep, as episodes (dicts of
    observations (T+1, the real final one last), actions, rewards, terminations, truncations).
    Episodes still running when the budget is reached end with a truncation.
    ``on_progress(done, steps)``, if given, is called every 1000 transitions or so."""
    pool = EnvPool(env_id, num_envs, seed, **(env_kwargs or {}))
    carry = policy.initial_carry(num_envs)
    open_eps = [_new_episode(o) for o in pool.obs]
    done_eps: list[dict] = []
    count = 0
    while count < steps:
        actions, carry = policy.eval_actions(pool.obs, carry)
        actions = np.asarray(actions, np.float32)
        next_obs, reward, term, trunc = pool.step(actions)
        take = min(num_envs, steps - count)
        for i in range(take):
            ep = open_eps[i]
            ep["actions"].append(actions[i])
            ep["rewards"].append(float(reward[i]))
            ep["terminations"].append(bool(term[i]))
            ep["truncations"].append(bool(trunc[i]))
            ep["observations"].append(next_obs[i])
        if on_progress is not None and (count + take) // 1000 > count // 1000:
            on_progress(count + take, steps)
        count += take
        done = term | trunc
        done[take:] = False
        if pool.advance(next_obs, done):
            carry = reset_carry(policy, carry, done)
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


def collect(agent: Policy | None, env_id: str, name: str, steps: int, noise: float = 0.0,
            seed: int = 0, num_envs: int = 8, ref_episodes: int = 10,
            ref_from: str | None = None, source: dict | None = None,
            env_kwargs: dict | None = None, sample: bool = False, on_progress=None) -> dict:
    """Write ``steps`` transitions of a policy as the Minari dataset ``name``.

    The policy is ``agent``'s deterministic action plus Gaussian ``noise``, or with ``sample``
    actions drawn from the agent's own distribution (D4RL's way: SAC's tanh-Gaussian), or
    uniform random actions when ``agent`` is None. ``source`` describes where the agent came
    from (run, checkpoint, policy name) for the metadata. The metadata records the env, the
    policy that made the data, its average episode return, and the reference scores for
    normalization: the random policy's average return (min) and the agent's deterministic
    return (max), or with ``ref_from`` those of another dataset (e.g. a medium dataset takes
    the expert's)."""
    check_new(name)
    if steps <= 0:
        raise ContrlError(f"steps must be positive, got {steps}")
    check_noise(noise)
    if sample and (agent is None or noise > 0):
        raise ContrlError("sampled actions need a run's policy and no --noise (its own "
                          "distribution is the noise)")
    refs = reference_scores(ref_from, env_id) if ref_from else None
    env_kwargs = env_kwargs or {}
    meta: dict = {"noise": noise, "sampled": sample, "seed": seed, **(source or {})}
    keys = flattening_keys(env_id, env_kwargs.get("obs_keys"))
    if keys:
        meta["obs_keys"] = list(keys)  # how dict observations were flattened
    if env_kwargs.get("action_repeat", 1) > 1:
        meta["action_repeat"] = env_kwargs["action_repeat"]  # a row is that many env steps
    action_dim = raw_action_space(env_id).shape[0]
    if refs is None:
        rand = RandomPolicy(action_dim, seed + 7)
        # the episodes collections have always scored on (a dataset remade with its recorded
        # seed gets the same reference scores): not a run, so no seed_streams to choose
        first = stream_seed(seed, "eval_envs", "offset")
        ref_min = evaluate(rand, env_id, ref_episodes, first, **env_kwargs)["mean_return"]
        ref_max = None if agent is None else evaluate(
            agent, env_id, ref_episodes, first, **env_kwargs)["mean_return"]
        if ref_max is not None and ref_max <= ref_min:  # a score would run backwards
            print(f"note: the policy's return ({ref_max:.1f}) is not above a random policy's "
                  f"({ref_min:.1f}): {name} gets no reference scores (--ref-from an expert "
                  "dataset gives it that dataset's)", file=sys.stderr)
            ref_max = None
    else:
        ref_min, ref_max = refs
        meta["references_from"] = ref_from
    if agent is None:
        policy, meta["policy"] = RandomPolicy(action_dim, seed), "uniform random"
    elif sample:
        policy = SampledPolicy(agent, seed)
        meta["policy"] = meta.get("policy", "a contrl policy") + ", actions sampled from it"
    else:
        policy = NoisyPolicy(agent, noise, seed) if noise > 0 else agent
        meta["policy"] = meta.get("policy", "a contrl policy") + (
            f" + N(0, {noise}^2) noise" if noise > 0 else "")
    episodes = rollout_episodes(policy, env_id, steps, seed, num_envs, env_kwargs, on_progress)
    if all(e.get("cut") for e in episodes):
        print(f"note: no episode of {name} ended within its {steps} steps (each of the "
              f"{num_envs} envs stepped in lockstep ran about {-(-steps // num_envs)}), so it has "
              "no average return; more --steps or fewer --num-envs give whole episodes",
              file=sys.stderr)
    return _write(name, episodes, env_id, meta, ref_min, ref_max)


def check_noise(noise: float) -> None:
    """Action noise: a number >= 0 (``not noise >= 0`` also refuses nan)."""
    if not noise >= 0:
        raise ContrlError(f"noise must be a number >= 0, got {noise}")


def check_new(name: str) -> None:
    check_name(name)
    if (minari_root() / name).exists():
        raise ContrlError(f"dataset {name} already exists ({minari_root() / name})")


def _write(name, episodes, env_id, meta, ref_min, ref_max) -> dict:
    complete = [float(np.sum(e["rewards"])) for e in episodes if not e.get("cut")]
    meta["average_return"] = float(np.mean(complete)) if complete else None
    meta["cut_episodes"] = [i for i, e in enumerate(episodes) if e.get("cut")]  # for concat
    path = write_minari(name, episodes, env_id, meta, ref_min, ref_max)
    load_dataset(path, env_id)  # builds the flat copy that makes later loads fast
    return {"name": name, "path": str(path), "episodes": len(episodes),
            "complete_episodes": len(complete),
            "steps": int(sum(len(e["rewards"]) for e in episodes)),
            "average_return": meta["average_return"], "ref_min_score": ref_min,
            "ref_max_score": ref_max}


def reference_scores(name: str, env_id: str) -> tuple[float | None, float | None]:
    """(ref_min, ref_max) recorded in a local dataset's metadata, refused when that dataset
    was collected in another environment than ``env_id``."""
    meta = dataset_metadata(name)
    theirs = recorded_env(meta)
    if theirs and not same_env_task(theirs, env_id):
        raise ContrlError(f"--ref-from {name}: its reference scores are {theirs}'s, not "
                          f"{env_id}'s")
    return meta.get("ref_min_score"), meta.get("ref_max_score")


def export_buffer(arrays: dict, capacity: int, num_envs: int, env_id: str, name: str,
                  source: dict, ref_from: str | None = None) -> dict:
    """Write a replay buffer saved in a checkpoint (its ``buffer/`` arrays; the run's buffer
    capacity and env count) as the dataset ``name``: D4RL's "replay" datasets, everything the
    run had collected, its warm-up included. ``source`` describes the run for the metadata."""
    check_new(name)
    if not arrays:
        raise ContrlError("the checkpoint holds no replay buffer (only full checkpoints of "
                          "off-policy runs do)")
    obs_dim, action_dim = arrays["buffer/obs"].shape[-1], arrays["buffer/action"].shape[-1]
    buffer = ReplayBuffer(capacity, obs_dim, action_dim, num_envs)
    buffer.load_state(arrays, buffer.rng.bit_generator.state)
    refs = reference_scores(ref_from, env_id) if ref_from else (None, None)
    meta = dict(source)
    if ref_from:
        meta["references_from"] = ref_from
    return _write(name, buffer.episodes(), env_id, meta, *refs)


def concat(sources: list[str], name: str) -> dict:
    """The datasets ``sources``, one after the other, as the dataset ``name`` (e.g.
    medium-expert); reference scores are the first source's."""
    check_new(name)
    keys = [dataset_location(s).resolve() for s in sources]  # an id and its folder are one
    twice = list(dict.fromkeys(s for i, s in enumerate(sources) if keys[i] in keys[:i]))
    if twice:
        raise ContrlError(f"--concat names {', '.join(twice)} twice (as given or as another "
                          "name of the same dataset): its episodes would be in the new "
                          "dataset twice")
    parts = [load_dataset(s) for s in sources]
    unknown = [s for s, p in zip(sources, parts) if p.env_id is None]
    if unknown:
        raise ContrlError(f"cannot tell which env {', '.join(unknown)} was collected in (no env "
                          "id in the file): concatenate datasets that record it (Minari "
                          "datasets, or HDF5 files with an env_id attribute)")
    envs = {p.env_id for p in parts}
    if len(envs) != 1:
        raise ContrlError(f"cannot concatenate datasets of different envs ({', '.join(map(str, envs))})")
    repeats = {p.metadata.get("action_repeat", 1) for p in parts}
    if len(repeats) != 1:
        raise ContrlError(f"cannot concatenate datasets collected with different action_repeat "
                          f"({', '.join(map(str, sorted(repeats)))})")
    if len({(p.obs_dim, p.action_dim) for p in parts}) != 1:
        raise ContrlError("cannot concatenate datasets of different observation or action "
                          "widths (" + ", ".join(f"{s}: observations {p.obs_dim}, actions "
                                                 f"{p.action_dim}" for s, p in zip(sources, parts))
                          + ")")
    orders = {tuple(p.metadata.get("obs_keys") or ()) for p in parts}
    if len(orders) != 1:
        raise ContrlError("cannot concatenate datasets whose dict observations were flattened "
                          "in different key orders (" + ", ".join(
                              f"{s}: {', '.join(p.metadata.get('obs_keys') or ['-'])}"
                              for s, p in zip(sources, parts)) + ")")
    episodes = [ep for p in parts for ep in _marked_episodes(p)]
    meta = {"sources": list(sources), "policy": " + ".join(sources)}
    if repeats != {1}:
        meta["action_repeat"] = repeats.pop()
    order = orders.pop()
    if order:
        meta["obs_keys"] = list(order)  # as its sources
    return _write(name, episodes, parts[0].env_id, meta, parts[0].ref_min_score,
                  parts[0].ref_max_score)


def _marked_episodes(ds) -> list[dict]:
    """``ds``'s episodes, those its collection cut short (by the step budget, not by the env)
    marked ``cut`` as when they were collected, so that the average return of complete
    episodes stays what it was: from the dataset's record, or for a dataset made before
    contrl kept one, an episode ending in a truncation before the env's time limit."""
    episodes = ds.episodes()
    cut = ds.metadata.get("cut_episodes")
    if cut is None:
        from contrl.envs import make_env
        from contrl.envs.make import time_limit
        try:
            env = make_env(ds.env_id)
        except ContrlError:  # an env this machine cannot make: nothing is known to be cut
            return episodes
        limit = time_limit(env)
        env.close()
        repeat = ds.metadata.get("action_repeat", 1)  # a row is that many env steps
        cut = [i for i, e in enumerate(episodes) if limit and e["truncations"][-1]
               and len(e["rewards"]) * repeat < limit]
    for i in cut:
        if i < len(episodes):
            episodes[i]["cut"] = True
    return episodes
