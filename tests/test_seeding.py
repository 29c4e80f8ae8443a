import numpy as np
import pytest

from contrl import config as C
from contrl.seeding import FORMER_OFFSETS, ROOM, stream, stream_seed


def test_the_offset_scheme_gives_the_seeds_runs_had_before():
    assert [stream_seed(5, p, "offset") for p in ("replay", "warmup", "offline_mix", "offline",
                                                  "train_envs", "eval_envs")] == [
        5, 6, 7, 5, 5, 100_005]
    assert stream_seed(5, "held_out_envs", "offset") == 1_100_005  # then + 100000 in evaluate
    assert stream_seed(2**31 - 1, "held_out_envs", "offset") == 999_999 + 100_000  # wrapped


def test_hashed_streams_are_fixed_and_in_range():
    # a change here changes every new run's draws (and its reproduction): on purpose only
    assert stream_seed(0, "eval_envs") == 1107871912
    assert stream_seed(1, "warmup") == 1836354124
    seeds = [stream_seed(s, p) for s in (0, 1, 2**32 - 1) for p in FORMER_OFFSETS]
    assert all(0 <= x < ROOM for x in seeds) and len(set(seeds)) == len(seeds)
    assert stream(3, "replay").integers(1 << 30) == np.random.default_rng(
        stream_seed(3, "replay")).integers(1 << 30)


def test_neighbouring_seeds_share_no_episodes_or_streams():
    """With offsets, seed s and s + 1 shared 9 of 10 evaluation episodes and seed s's warm-up
    generator was seed s + 1's replay generator; hashed, no env seed range overlaps."""
    episodes, envs = 100, 16
    ranges = []
    for s in range(20):
        ranges.append(range(stream_seed(s, "eval_envs"), stream_seed(s, "eval_envs") + episodes))
        ranges.append(range(stream_seed(s, "held_out_envs"),
                            stream_seed(s, "held_out_envs") + episodes))
        ranges.append(range(stream_seed(s, "train_envs"), stream_seed(s, "train_envs") + envs))
    starts = sorted((r.start, r.stop) for r in ranges)
    assert all(a_stop <= b_start for (_, a_stop), (b_start, _) in zip(starts, starts[1:]))
    old = set(range(100_000, 100_010)) & set(range(100_001, 100_011))
    assert len(old) == 9  # what the offset scheme did
    assert stream_seed(0, "warmup", "offset") == stream_seed(1, "replay", "offset")
    assert stream_seed(0, "warmup") != stream_seed(1, "replay")


def test_new_runs_hash_and_saved_runs_without_the_field_keep_offsets():
    assert C.RunConfig().seed_streams == "hashed"
    saved = C.build(C.RunConfig, {"env": "Pendulum-v1", "seed": 4}, saved=True)
    assert saved.seed_streams == "offset" and saved.stream_seed("eval_envs") == 100_004
    assert C.RunConfig(seed=4).stream_seed("eval_envs") == stream_seed(4, "eval_envs")
    with pytest.raises(C.ConfigError, match="seed_streams must be hashed or offset"):
        C.RunConfig(seed_streams="random").validate()
    with pytest.raises(ValueError, match="unknown random stream"):
        stream_seed(0, "nothing")
