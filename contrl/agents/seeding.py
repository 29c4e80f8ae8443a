"""Imitation-seeded SAC: start SAC's actor from a behaviour-cloned policy and its critics from
a regression on the demonstrations' Monte-Carlo returns-to-go.

The actor comes from a BC run (``seed_from``: its Gaussian head is SAC's actor network, with the
observation normalization folded into the first layer) or is cloned here from ``dataset``.
The critics are fitted to the discounted returns-to-go of the demonstrations' (s, a) pairs, so
the first online updates do not drag the seeded actor towards an untrained critic's argmax.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from contrl.agents.base import td_loss
from contrl.errors import ContrlError


def seed_sac(agent, cfg, env_id: str, seed: int):
    """The SAC ``agent`` with its actor (and critics, if there are demonstrations) seeded."""
    from contrl.agents.bc import BC, BCConfig
    from contrl.data.datasets import load_dataset
    from contrl.train import load_agent

    dataset_name = cfg.dataset
    if cfg.seed_from:
        bc, bc_run, bc_cfg, _ = load_agent(cfg.seed_from, "best")
        if not isinstance(bc, BC) or not bc.gaussian:
            raise ContrlError(f"--seed-from needs a bc run with the gaussian head; "
                              f"{cfg.seed_from} is not one")
        if bc_run.env != env_id:
            raise ContrlError(f"{cfg.seed_from} imitates {bc_run.env}, not {env_id}")
        if tuple(bc_cfg.hidden) != tuple(cfg.hidden):
            raise ContrlError(f"{cfg.seed_from} has hidden layers {tuple(bc_cfg.hidden)}; this "
                              f"SAC has {tuple(cfg.hidden)} (set --hidden to match)")
        dataset_name = dataset_name or bc_cfg.dataset
    data = load_dataset(dataset_name, env_id) if dataset_name else None
    if not cfg.seed_from:
        bc = BC.create(BCConfig(hidden=cfg.hidden, dataset=dataset_name), data.obs_dim,
                       data.action_dim, seed).fit_normalizer(data.observations)
        rng = np.random.default_rng(seed)
        for _ in range(max(1, cfg.pretrain_steps // 100)):
            bc, _ = bc.update(data.sample(rng, cfg.batch_size, cfg.gamma, 100))
    actor_params = bc.export_actor()
    if cfg.seed_log_std is not None:
        actor_params = reset_log_std(actor_params, cfg.seed_log_std)
    agent = agent.replace(actor=agent.actor.replace(params=actor_params),
                          bc_params=jax.tree_util.tree_map(jnp.copy, actor_params))
    if data is not None and cfg.pretrain_steps > 0:
        agent = fit_critic(agent, data, cfg, seed)
    return agent


def reset_log_std(actor_params, log_std: float):
    """Make the actor's log-std output the constant ``log_std`` (the last layer's second half:
    zero weights, bias log_std). BC on a deterministic expert drives it to the lower clip,
    where SAC's log-probabilities, entropy bonus and soft targets are extreme."""
    params = jax.tree_util.tree_map(jnp.asarray, actor_params)
    mlp = params["params"]["MLP_0"]
    last = sorted(mlp, key=lambda k: int(k.split("_")[1]))[-1]
    kernel, bias = mlp[last]["kernel"], mlp[last]["bias"]
    half = bias.shape[0] // 2
    kernel = kernel.at[:, half:].set(0.0)
    bias = bias.at[half:].set(log_std)
    return {"params": {**params["params"], "MLP_0": {**mlp, last: {"kernel": kernel, "bias": bias}}}}


def fit_critic(agent, data, cfg, seed: int):
    """Regress every critic on the demonstrations' discounted returns-to-go, then copy the
    result to the target critics."""
    rtg = data.returns_to_go(cfg.gamma)
    rng = np.random.default_rng(seed + 1)
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
