"""Recurrent SAC update speed: contrl's ``rsac`` against the same update written in PyTorch,
side by side in one process, interleaved.

Shapes (the issue's): 32 windows x 64 steps, GRU 128 for the actor and for the critics
(separate cores), 2x256 heads, twin critics with a target copy (cores included), automatic
entropy tuning; observation 14 numbers (HalfCheetah-P's 8 + previous action 6), action 6.
Both sides compute the same losses: the critics' masked TD error against
r + gamma * (min Q'(h'_{t+1}, a') - alpha log pi(a'|h_{t+1})), then the actor's masked
alpha log pi - min Q with the critics' features held fixed, then the temperature, then the
Polyak update. The batches are the same random windows (a quarter of them padded).

Then the env steps per second of whole runs (``--runs``, default rsac and rtd3 on
Pendulum-V-v1 with their presets, ``--run-steps`` steps; the rate over the logged rows after
learning started, i.e. acting, env stepping and updates together).

    python benchmarks/recurrent_speed.py [--updates 40] [--repeats 3] [--out FILE]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import emit, report_header, run_interleaved

OBS, ACT, B, T, H, HID = 14, 6, 32, 64, 128, 256


def windows(rng, k: int):
    """k batches of B windows, time-major, with masks (a quarter of the windows end early)."""
    obs = rng.normal(size=(k, T + 1, B, OBS)).astype(np.float32)
    act = rng.uniform(-1, 1, (k, T, B, ACT)).astype(np.float32)
    rew = rng.normal(size=(k, T, B)).astype(np.float32)
    disc = np.full((k, T, B), 0.99, np.float32)
    mask = np.ones((k, T, B), np.float32)
    ends = rng.integers(8, T, (k, B // 4))
    for i in range(k):
        for j, e in enumerate(ends[i]):
            mask[i, e:, j] = 0.0
    return obs, act, rew, disc, mask


# ------------------------------------------------------------------------------- contrl
def contrl_runner(updates: int, k: int):
    import jax

    from contrl.agents.recurrent import RSAC, RSACConfig
    from contrl.data.batch import SequenceBatch

    cfg = RSACConfig(hidden=(HID, HID), rnn_hidden=H, batch_size=B, seq_len=T)
    agent = RSAC.create(cfg, OBS, ACT, seed=0)
    rng = np.random.default_rng(0)
    obs, act, rew, disc, mask = windows(rng, k)
    batch = SequenceBatch(obs, act, rew, disc, mask, np.zeros((k, T + 1, B), bool))
    state = {"agent": agent}

    def run() -> float:
        a, m = state["agent"].update(batch)  # compiled on the first call
        jax.block_until_ready(m)
        t = time.perf_counter()
        for _ in range(updates // k):
            a, m = a.update(batch)
        jax.block_until_ready(m)
        state["agent"] = a
        return (updates // k) * k / (time.perf_counter() - t)
    return run


# ------------------------------------------------------------------------------- torch
def torch_runner(updates: int, k: int):
    import copy

    import torch
    from torch import nn

    torch.manual_seed(0)

    def mlp(inp, out):
        return nn.Sequential(nn.Linear(inp, HID), nn.ReLU(), nn.Linear(HID, HID), nn.ReLU(),
                             nn.Linear(HID, out))

    class Actor(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(OBS, H)
            self.head = mlp(H + OBS, 2 * ACT)

        def forward(self, obs):
            feats = self.gru(obs)[0]
            mean, log_std = self.head(torch.cat([feats, obs], -1)).chunk(2, -1)
            log_std = log_std.clamp(-20, 2)
            eps = torch.randn_like(mean)
            u = mean + log_std.exp() * eps
            logp = (-0.5 * (eps ** 2 + np.log(2 * np.pi)) - log_std
                    - 2 * (np.log(2) - u - nn.functional.softplus(-2 * u))).sum(-1)
            return torch.tanh(u), logp

    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(OBS, H)
            self.q1, self.q2 = mlp(H + OBS + ACT, 1), mlp(H + OBS + ACT, 1)

        def features(self, obs):
            return self.gru(obs)[0]

        def heads(self, feats, obs, act):
            x = torch.cat([feats, obs, act], -1)
            return torch.stack([self.q1(x)[..., 0], self.q2(x)[..., 0]])

    actor, critic = Actor(), Critic()
    target = copy.deepcopy(critic)
    for p in target.parameters():
        p.requires_grad_(False)
    log_alpha = torch.zeros((), requires_grad=True)
    opt_a = torch.optim.Adam(actor.parameters(), 3e-4)
    opt_c = torch.optim.Adam(critic.parameters(), 3e-4)
    opt_t = torch.optim.Adam([log_alpha], 3e-4)
    rng = np.random.default_rng(0)
    data = [torch.as_tensor(x) for x in windows(rng, k)]

    def masked_mean(x, mask):
        return (x * mask).sum() / (mask.sum() * (x.numel() // mask.numel()))

    def step(i):
        obs, act, rew, disc, mask = (x[i] for x in data)
        now, nxt = obs[:-1], obs[1:]
        alpha = log_alpha.exp().detach()
        with torch.no_grad():
            next_a, next_logp = actor(obs)
            next_q = target.heads(target.features(obs)[1:], nxt, next_a[1:]).min(0).values
            y = rew + disc * (next_q - alpha * next_logp[1:])
        q = critic.heads(critic.features(now), now, act)
        c_loss = 0.5 * 2 * masked_mean((q - y) ** 2, mask)
        opt_c.zero_grad()
        c_loss.backward()
        opt_c.step()
        with torch.no_grad():
            feats = critic.features(now)
        a, logp = actor(now)
        a_loss = masked_mean(alpha * logp - critic.heads(feats, now, a).min(0).values, mask)
        opt_a.zero_grad()
        a_loss.backward()
        opt_a.step()
        entropy = -masked_mean(logp.detach(), mask)
        t_loss = log_alpha * (entropy + ACT)
        opt_t.zero_grad()
        t_loss.backward()
        opt_t.step()
        with torch.no_grad():
            for p, tp in zip(critic.parameters(), target.parameters()):
                tp.mul_(0.995).add_(0.005 * p)

    def run() -> float:
        step(0)  # warm-up
        t = time.perf_counter()
        for j in range(updates):
            step(j % k)
        return updates / (time.perf_counter() - t)
    return run


def whole_run_speed(algo: str, env: str, steps: int) -> float:
    """Env steps per second of a ``contrl train`` run after its warm-up (from progress.csv)."""
    import tempfile
    from pathlib import Path

    from common import column

    from contrl.train import build_configs, train
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train(algo, env, {"steps": steps, "progress": False, "tensorboard": False,
                          "eval_every": 0, "log_every": 500}, run_dir=str(run))
        x, t = column(run, "time")
    start = build_configs(algo, env, {})[1].learning_starts
    keep = x > start + 500  # skip the warm-up and the first compiled update
    return float((x[keep][-1] - x[keep][0]) / (t[keep][-1] - t[keep][0]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=40, help="gradient steps timed per repeat")
    p.add_argument("--k", type=int, default=8, help="contrl: gradient steps per compiled call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None, help="append the Markdown record to this file")
    p.add_argument("--runs", default="rsac:Pendulum-V-v1,rtd3:Pendulum-V-v1",
                   help="algo:env pairs whose whole-run env steps/s are measured ('' for none)")
    p.add_argument("--run-steps", type=int, default=4000)
    p.add_argument("--gru-autodiff", action="store_true",
                   help="contrl's GRU differentiated by JAX instead of its hand-written backward "
                        "pass (to measure what that pass gains)")
    a = p.parse_args()
    if a.gru_autodiff:
        import contrl.nets
        contrl.nets.gru_scan = contrl.nets.gru_loop  # JAX differentiates the loop
    runners = {"contrl": contrl_runner(a.updates, a.k), "pytorch": torch_runner(a.updates, a.k)}
    res = run_interleaved(list(runners), a.repeats, lambda lib: runners[lib]())
    import torch
    lines = report_header("Recurrent SAC updates per second", "recurrent_speed.py", level=3,
                          minutes=True,
                          settings=f"{B} windows x {T} steps, GRU {H} (actor and critics"
                                   f"{'; contrl: autodiff GRU' if a.gru_autodiff else ''}), "
                                   f"2x{HID} heads, obs {OBS}, action {ACT}; torch "
                                   f"{torch.__version__} with {torch.get_num_threads()} threads")
    lines += ["| implementation | updates/s (each repeat) | median |", "|---|---|---|"]
    med = {}
    for lib, xs in res.items():
        med[lib] = float(np.median(xs))
        lines.append(f"| {lib} | {', '.join(f'{x:.1f}' for x in xs)} | {med[lib]:.1f} |")
    if len(med) == 2:
        lines += ["", f"ratio contrl / pytorch: {med['contrl'] / med['pytorch']:.2f}x"]
    pairs = [p.split(":", 1) for p in a.runs.split(",") if p]
    if pairs:
        lines += ["", f"Whole runs ({a.run_steps} steps with the preset, evaluation off): env "
                  "steps per second after the warm-up", ""]
        for algo, env in pairs:
            lines.append(f"- {algo} {env}: {whole_run_speed(algo, env, a.run_steps):.1f} steps/s")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
