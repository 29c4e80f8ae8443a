"""Training windows for recurrent agents: runs of consecutive steps inside one episode, cut
from index arrays. The replay buffer and the in-memory dataset store steps differently (a ring
of rows per env with an extra row for each episode's final observation; flat transition rows
with their next observations) and each finds its windows' rows; what a window then is (which
steps are trained, where burn-in ends, the discounts, the time-major layout) is decided here,
once, so that windows of either source can be concatenated along the batch axis.
"""
from __future__ import annotations

import numpy as np

from contrl.data.batch import SequenceBatch


def leading_run(flags: np.ndarray) -> np.ndarray:
    """Per row of ``flags`` (N, L), how many of its first entries are all True: (N,)."""
    return np.cumprod(flags, axis=1).sum(axis=1)


def sequence_batch(obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
                   terminated: np.ndarray, inside: np.ndarray, back: np.ndarray, gamma: float,
                   k: int, n: int) -> SequenceBatch:
    """``k`` batches of ``n`` windows of W steps from the values read for them (N = k * n):

    - ``obs`` (N, W + 1, d): o_0 .. o_W, the final observation right after the episode's last
      step; anything (finite) past it;
    - ``action`` (N, W, a), ``reward`` (N, W), ``terminated`` (N, W) of each step;
    - ``inside`` (N, W): step t is a transition of the window's episode (not padding);
    - ``back`` (N,): burn-in steps before the first trained step.

    The loss counts the steps inside the episode from ``back`` on; the recurrent state entering
    step ``back`` is detached (``stop``) where there was a burn-in; padding gets reward 0; the
    discount is gamma * (1 - terminated), so a time-limit end keeps its bootstrap."""
    N, W = inside.shape
    mask = inside & (np.arange(W) >= back[:, None])
    stop = np.zeros((N, W + 1), bool)
    stop[np.arange(N), back] = back > 0

    def tm(a):  # (N, T, ...) -> (k, T, n, ...)
        a = a.reshape(k, n, *a.shape[1:])
        return np.swapaxes(a, 1, 2)

    return SequenceBatch(
        obs=tm(obs),
        action=tm(action),
        reward=tm(np.where(inside, reward, 0.0).astype(np.float32)),
        discount=tm((gamma * ~terminated).astype(np.float32)),
        mask=tm(mask.astype(np.float32)),
        stop=tm(stop),
    )
