"""Saved runs: their configurations and agents read back from a run directory, their policies
for your own code (``load_policy``), and what is made from them (datasets, exports)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from contrl import config as C
from contrl.envs import make_env, resolve_env_id
from contrl.envs.make import default_eval_episodes
from contrl.errors import ContrlError
from contrl.evaluate import evaluate
from contrl.policy import SampledPolicy, reset_carry
from contrl.registry import resolve_algo
from contrl.run import (Checkpoint, atomic_write_bytes, atomic_write_json, is_online_phase,
                        saved_config)
from contrl.seeding import stream_seed


def run_configs(run_dir: str | Path):
    """(RunConfig, algorithm config) saved in a run directory (or an online phase's)."""
    saved = saved_config(run_dir)
    try:
        run_cfg = C.build(C.RunConfig, saved["run"], saved=True)
        algo_cfg = C.build(resolve_algo(saved["algo"])[0], saved["algo_config"], saved=True)
        run_cfg.validate()  # a hand-edited value is named here, not by a traceback later
        algo_cfg.validate()
    except C.ConfigError as e:
        raise ContrlError(f"{Path(run_dir) / 'config.json'}: {e}") from None
    return run_cfg, algo_cfg


RUN_RECORDS = ("config.json", "eval.json", "progress.csv")


def run_name(run_dir: str | Path) -> str:
    """A run's folder name (``<run>/online`` for an offline run's online phase)."""
    path = Path(run_dir)
    return f"{path.parent.name}/online" if is_online_phase(path) else path.name


def export_policies(run_dir: str | Path, out_dir: str | Path,
                    which: tuple[str, ...] = ("best", "latest")) -> Path:
    """Copy a run's shareable part to ``out_dir``: its config, last evaluation and
    progress.csv, and the agents of its ``which`` checkpoints without the replay buffer or
    resumable state (megabytes instead of the buffer's hundreds). The copy evaluates and
    collects like the run (``contrl eval``, ``contrl collect``); it cannot be resumed."""
    src, out = Path(run_dir), Path(out_dir)
    latest = out / "checkpoints" / "latest.ckpt"
    itself = out.resolve() == src.resolve()
    if itself or (latest.is_file() and Checkpoint(latest).resumable()):
        raise ContrlError(f"{out} holds a run{' (the one exported)' if itself else ''}: an "
                          "export there would replace its checkpoints with policies that cannot "
                          "be resumed; export to another folder")
    for name in which:
        if not (src / "checkpoints" / f"{name}.ckpt").exists():
            raise ContrlError(f"{src} has no checkpoints/{name}.ckpt to export")
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in which:
        Checkpoint(src / "checkpoints" / f"{name}.ckpt").save_policy(
            out / "checkpoints" / f"{name}.ckpt")
    for name in RUN_RECORDS:
        if (src / name).exists():
            atomic_write_bytes(out / name, (src / name).read_bytes())
    if is_online_phase(src):  # it keeps no config.json: the copy gets the one it trains with
        atomic_write_json(out / "config.json", saved_config(src))
    return out


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """The checkpoint file that ``which`` names in a run: ``best``, else (a run that never
    evaluated, or an exported copy) ``latest``."""
    path = Path(run_dir) / "checkpoints" / f"{which}.ckpt"
    if which == "best" and not path.exists():
        path = Path(run_dir) / "checkpoints" / "latest.ckpt"
    return path


def load_agent(run_dir: str | Path, which: str = "best"):
    """The agent saved in a run directory (``best``, else ``latest``; or ``latest``), the
    run's configs and the checkpoint's metadata, whose ``checkpoint`` names the one used."""
    run_dir = Path(run_dir)
    run_cfg, algo_cfg = run_configs(run_dir)
    agent_cls = resolve_algo(saved_config(run_dir)["algo"])[1]
    path = checkpoint_path(run_dir, which)
    ckpt = Checkpoint(path)
    env = make_env(run_cfg.env, **run_cfg.env_kwargs)
    template = agent_cls.create(algo_cfg, env.observation_space.shape[0],
                                env.action_space.shape[0], run_cfg.seed,
                                num_envs=run_cfg.num_envs)
    env.close()
    return ckpt.restore_agent(template), run_cfg, algo_cfg, {**ckpt.meta, "checkpoint": path.stem}


def held_out_episodes(run_cfg, episodes: int | None = None,
                      seed: int | None = None) -> tuple[int, int]:
    """(episodes, first episode's env seed) of an evaluation after training, as ``contrl eval``
    runs it: by default the run's held-out episodes (not those that chose its best checkpoint),
    100 on mazes and 10 elsewhere; with ``seed`` the episodes a run of that seed evaluated on."""
    check_eval_request(episodes, seed)
    first = (run_cfg.stream_seed("held_out_envs") if seed is None
             else stream_seed(seed, "eval_envs", run_cfg.seed_streams))
    return default_eval_episodes(run_cfg.env) if episodes is None else episodes, first


def check_eval_request(episodes: int | None, seed: int | None) -> None:
    """Refuse an evaluation's episode count or seed before anything is loaded."""
    if episodes is not None and episodes <= 0:
        raise C.ConfigError(f"episodes must be positive, got {episodes}")
    if seed is not None:
        C.check_seed(seed)


class RunPolicy:
    """A trained run's policy for your own code (``load_policy(RUN)``): ``act`` maps an
    observation of ``make_env()``'s env to an action in [-1, 1], deterministically as
    ``contrl eval`` acts, or with ``sample`` drawn from the policy's own distribution as in
    training (seeded by ``seed``). A recurrent policy keeps its memory from call to call until
    ``reset()`` (call it at each episode's start). For ``n`` envs acting in one batch,
    ``reset(n)``, then ``act`` takes (n, obs_dim) observations and ``reset(n, done)`` starts
    the ``done`` envs' memories afresh. The env is made as the run's were (its observation
    keys, frame stack, previous action/reward, action repeat)."""

    def __init__(self, run_dir: str | Path, which: str = "best", sample: bool = False,
                 seed: int = 0):
        if which not in ("best", "latest"):
            raise ContrlError(f"the checkpoint is best or latest, not {which!r}")
        self.agent, self.run_cfg, self.algo_cfg, self.meta = load_agent(run_dir, which)
        self._acting = SampledPolicy(self.agent, seed) if sample else self.agent
        self.env_id = self.run_cfg.env
        env = self.make_env()
        self.observation_space, self.action_space = env.observation_space, env.action_space
        env.close()
        self.reset()

    def make_env(self, render_size: tuple[int, int] | None = None):
        """A Gymnasium env as the run trained on (``render_size`` (height, width): RGB frames
        from ``env.render()``)."""
        return make_env(self.env_id, render_size=render_size, **self.run_cfg.env_kwargs)

    def reset(self, num_envs: int = 1, done=None) -> None:
        """Forget what a recurrent policy remembers, for ``num_envs`` envs acting in one batch;
        with ``done`` (a bool per env) only for those envs (their episodes start anew)."""
        if done is None:
            if num_envs < 1:
                raise ContrlError(f"num_envs must be positive, got {num_envs}")
            self.num_envs, self._carry = num_envs, self._acting.initial_carry(num_envs)
            return
        done = np.asarray(done, bool)
        if done.shape != (self.num_envs,):
            raise ContrlError(f"done needs one bool per env ({self.num_envs}), got shape "
                              f"{done.shape}")
        self._carry = reset_carry(self._acting, self._carry, done)

    def act(self, obs) -> np.ndarray:
        """The action for an observation of ``make_env()``'s env (a batch of ``num_envs``
        of them after ``reset(num_envs)``)."""
        dim = self.observation_space.shape[0]
        want = (dim,) if self.num_envs == 1 else (self.num_envs, dim)
        if isinstance(obs, dict):
            raise ContrlError(f"{self.env_id}'s policy takes the flat observation of its "
                              "make_env(), not the env's dict")
        try:
            obs = np.asarray(obs, np.float32)
        except (TypeError, ValueError):
            obs = None
        if obs is None or obs.shape != want:
            got = "something that is not an array of numbers" if obs is None else (
                f"an array of shape {obs.shape}")
            raise ContrlError(f"{self.env_id}'s policy takes observations of shape {want} "
                              f"(from its make_env(); a batch of n after reset(n)), got {got}")
        actions, self._carry = self._acting.eval_actions(obs.reshape(self.num_envs, dim),
                                                         self._carry)
        return np.array(actions).reshape(want[:-1] + self.action_space.shape)

    def evaluate(self, episodes: int | None = None, seed: int | None = None) -> dict:
        """Deterministic episodes as ``contrl eval`` runs them (``held_out_episodes``); the
        dict of ``contrl.evaluate.evaluate``: mean_return, returns, success_rate on goal
        tasks..."""
        episodes, first = held_out_episodes(self.run_cfg, episodes, seed)
        return evaluate(self.agent, self.env_id, episodes, first, **self.run_cfg.env_kwargs)


def load_policy(run_dir: str | Path, which: str = "best", sample: bool = False,
                seed: int = 0) -> RunPolicy:
    """The policy of a run directory (its ``best`` checkpoint, else ``latest``; or
    ``latest``), to act with in your own code: see ``RunPolicy``."""
    return RunPolicy(run_dir, which, sample, seed)


def collect_run(run_dir: str | Path | None, name: str, steps: int = 1_000_000,
                noise: float = 0.0, env_id: str | None = None, seed: int = 0, which: str = "best",
                num_envs: int = 8, ref_from: str | None = None, sample: bool = False,
                on_progress=None) -> dict:
    """``contrl collect``: roll out the policy of a run's ``which`` checkpoint (or, without a
    run, a uniform random policy on ``env_id``) into the Minari dataset ``name``; with
    ``sample`` its actions are drawn from its own distribution instead of its mode.
    ``on_progress(done, steps)``: see ``rollout_episodes``."""
    from contrl.data.collect import collect
    from contrl.data.datasets import check_name

    check_name(name)
    if run_dir is None:
        if env_id is None:
            raise ContrlError("a random dataset needs --env")
        return collect(None, resolve_env_id(env_id), name, steps, noise, seed, num_envs,
                       ref_from=ref_from, sample=sample, on_progress=on_progress)
    agent, run_cfg, _, meta = load_agent(run_dir, which)
    if env_id is not None and resolve_env_id(env_id) != run_cfg.env:
        raise ContrlError(f"{run_dir} was trained on {run_cfg.env}, not {env_id}")
    source = {"run": str(Path(run_dir).resolve()), "checkpoint": meta["checkpoint"],
              "checkpoint_step": meta.get("step"),
              "policy": f"contrl {run_name(run_dir)} ({meta['checkpoint']} checkpoint)"}
    return collect(agent, run_cfg.env, name, steps, noise, seed, num_envs, ref_from=ref_from,
                   source=source, env_kwargs=run_cfg.env_kwargs, sample=sample,
                   on_progress=on_progress)


def export_run_buffer(run_dir: str | Path, name: str, which: str = "latest",
                      ref_from: str | None = None) -> dict:
    """``contrl collect --from-buffer``: the replay buffer saved in a run's ``which``
    checkpoint as the Minari dataset ``name`` (D4RL's medium-replay)."""
    from contrl.data.collect import export_buffer
    from contrl.data.datasets import check_name

    check_name(name)
    run_cfg, algo_cfg = run_configs(run_dir)
    ckpt = Checkpoint(Path(run_dir) / "checkpoints" / f"{which}.ckpt")
    arrays = ckpt.arrays("buffer/")
    if not arrays:
        raise ContrlError(f"{ckpt.path} holds no replay buffer (only full checkpoints of "
                          "off-policy runs do)")
    source = {"run": str(Path(run_dir).resolve()), "checkpoint": which,
              "checkpoint_step": ckpt.meta.get("step"),
              "policy": f"replay buffer of contrl {run_name(run_dir)} ({which} checkpoint)"}
    if run_cfg.action_repeat > 1:
        source["action_repeat"] = run_cfg.action_repeat  # a row is that many env steps
    if run_cfg.obs_keys:
        source["obs_keys"] = list(run_cfg.obs_keys)  # how dict observations were flattened
    return export_buffer(arrays, algo_cfg.buffer_size, run_cfg.num_envs,
                         run_cfg.env, name, source, ref_from)


def make_maze_dataset_from_run(name: str, run_dir: str | Path, which: str = "best",
                               stop=None, **options) -> dict:
    """``contrl make-dataset``: the AntMaze dataset ``name`` driven by the goal reacher of a
    run trained on AntGoal-v3, -v2 or -v1 whose ant is the maze's (its ``which`` checkpoint);
    ``options``: ``make_maze_dataset``'s (steps, noise, episode_steps, seed, num_envs,
    restart_turned_over)."""
    from contrl.data.antmaze import check_collection, dataset_spec, make_maze_dataset
    from contrl.data.collect import check_new
    from contrl.envs.antgoal import ENV_ID, ENV_IDS
    from contrl.envs.make import ant_model

    spec = dataset_spec(name)
    check_new(name)
    collection = ("steps", "noise", "episode_steps", "seed", "num_envs")
    if all(k in options for k in collection):  # bad settings before the reacher loads
        check_collection(**{k: options[k] for k in collection})
    run_cfg, _ = run_configs(run_dir)
    if run_cfg.env not in ENV_IDS or not run_cfg.env_as_is():
        raise ContrlError(f"{run_dir} is not a goal reacher: the reacher must be trained on "
                          f"{ENV_ID} with plain observations (it was trained on {run_cfg.env})")
    ant, reacher_ant = ant_model(spec.env_id), ant_model(run_cfg.env)
    if reacher_ant != ant:
        fits = [e for e in ENV_IDS if ant_model(e) == ant]
        raise ContrlError(f"{name} is collected in {spec.env_id}, whose ant is {ant}'s; the "
                          f"reacher in {run_dir} learned on {run_cfg.env} "
                          f"({reacher_ant}'s ant): use a reacher trained on "
                          f"{' or '.join(fits)}")
    agent, _, _, meta = load_agent(run_dir, which)
    source = {"run": str(Path(run_dir).resolve()), "checkpoint": meta["checkpoint"],
              "checkpoint_step": meta.get("step")}
    rank = meta.get("best_metric")  # a best checkpoint's (success rate, return)
    if run_cfg.best_metric in ("auto", "success_rate") and rank and len(rank) == 2:
        source["reacher_reach_rate"] = rank[0]  # of the evaluation that made it the best
    return make_maze_dataset(name, agent, source, stop=stop, **options)
