"""TD3+BC on hopper-medium-v0, 5000 updates: Flax default weight init against a PyTorch-like one
(every kernel divided by sqrt(3): LeCun normal has std 1/sqrt(fan_in), PyTorch's default
uniform init std 1/sqrt(3 fan_in)). Prints return and normalized score per init and seed.

    python benchmarks/td3bc_init_check.py
"""
import jax
import numpy as np
from contrl.agents import REGISTRY
from contrl.data.datasets import load_dataset
from contrl.evaluate import evaluate
ds = load_dataset("hopper-medium-v0")
C, A, _ = REGISTRY["td3bc"]
cfg = C(dataset="hopper-medium-v0")
def scale(p):
    return jax.tree_util.tree_map_with_path(lambda path, x: x / np.sqrt(3.0) if "kernel" in jax.tree_util.keystr(path) else x, p)
for variant in ("flax init", "torch-like init"):
    for seed in (0, 1):
        a = A.create(cfg, 11, 3, seed).fit_dataset(ds, cfg)
        if variant != "flax init":
            a = a.replace(actor=a.actor.replace(params=scale(a.actor.params), opt_state=a.actor.tx.init(scale(a.actor.params))),
                          critic=a.critic.replace(params=scale(a.critic.params), opt_state=a.critic.tx.init(scale(a.critic.params))),
                          target_actor=scale(a.target_actor), target_critic=scale(a.target_critic))
        rng = np.random.default_rng(seed)
        for _ in range(5):
            a, m = a.update(ds.sample(rng, 256, 0.99, 1000))
        r = evaluate(lambda o: a.eval_actions(o), "Hopper-v5", 10, seed)["mean_return"]
        print(variant, seed, round(r), round(ds.normalized_score(r), 1), flush=True)
