"""A run's random streams: one per purpose (replay draws, warm-up actions, dataset batches,
training envs, evaluation envs, ...), each derived from the run's seed.

Scheme ``hashed`` derives each stream from a hash of (seed, purpose), so neither two purposes
of one run nor two seeds share draws: seed 1's evaluation episodes are not seed 0's shifted by
one, and seed 0's warm-up actions are not seed 1's replay draws. Scheme ``offset`` is how runs
made before 2026-12-07 drew (seed, seed + 1, seed + 2 for the generators, seed + i for env i,
seed + 100000 + i for evaluation episode i, so that neighbouring seeds shared most of their
evaluation episodes); it is kept so that those runs resume, evaluate and reproduce as made.
"""
from __future__ import annotations

import zlib

import numpy as np

SCHEMES = ("hashed", "offset")

FORMER_OFFSETS = {
    "replay": 0,  # the replay buffer's draws
    "warmup": 1,  # an off-policy run's uniform actions before learning starts
    "offline_mix": 2,  # dataset rows mixed into an off-policy run's batches
    "offline": 0,  # an offline run's batches (MOPO: also its model rollouts' start rows)
    "dagger": 0,  # DAgger's choice of who acts, and its batches
    "pretrain": 0,  # imitation-seeded SAC's behaviour-cloning batches
    "pretrain_critic": 1,  # its critics' regression batches
    "holdout": 0,  # which rows a dynamics model holds out for validation
    "train_envs": 0,  # training env i is reset with this + i
    "eval_envs": 100_000,  # evaluation episode i is seeded this + i
    "held_out_envs": 1_000_000,  # contrl eval's episodes that training's evaluations never saw
}
"""Every purpose, with the offset from the seed that scheme ``offset`` gives it."""

ROOM = 2**31
"""Hashed stream seeds are below this, so that an env index or episode number added to one
stays a valid seed for every env (dm_control's take uint32). (Offset ones are the seed plus
the offset, as they were: a seed near 2**32 overflows dm_control's range there.)"""


def stream_seed(seed: int, purpose: str, scheme: str = "hashed") -> int:
    """The seed of ``purpose``'s stream in a run of ``seed``: hashed, an integer in
    [0, 2**31); offset, the seed plus the purpose's former offset, as runs made before had
    it."""
    if purpose not in FORMER_OFFSETS:
        raise ValueError(f"unknown random stream {purpose!r}")
    if scheme == "offset":
        if purpose == "held_out_envs":  # as contrl eval's default was: its own seed, then
            return (seed + FORMER_OFFSETS[purpose]) % ROOM + FORMER_OFFSETS["eval_envs"]
        return seed + FORMER_OFFSETS[purpose]
    if scheme != "hashed":
        raise ValueError(f"unknown seed scheme {scheme!r}")
    entropy = [seed, zlib.crc32(purpose.encode())]  # crc32: the same in every process
    return int(np.random.SeedSequence(entropy).generate_state(1)[0]) % ROOM


def stream(seed: int, purpose: str, scheme: str = "hashed") -> np.random.Generator:
    """The generator of ``purpose``'s stream in a run of ``seed``."""
    return np.random.default_rng(stream_seed(seed, purpose, scheme))
