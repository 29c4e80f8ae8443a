"""Replay buffer that stores each observation once.

Each of the ``E`` parallel envs owns a ring of ``capacity // E`` rows. Row ``r`` holds an
observation and, if it starts a transition, the action taken there, the reward and whether the
episode truly terminated; the next observation is row ``r + 1``. At the end of an episode the
real final observation gets a row of its own (not a transition start), and the first
observation of the next episode starts a new row. So next observations are never the reset
ones, truncations keep their bootstrap, and memory is about half that of storing ``obs`` and
``next_obs`` separately (1M Humanoid transitions: ~1.5 GB).
"""
from __future__ import annotations

import numpy as np

from contrl.data.batch import Batch, SequenceBatch
from contrl.data.windows import leading_run, sequence_batch


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int, action_dim: int, n_envs: int = 1, seed: int = 0):
        if capacity < 2 * n_envs:
            raise ValueError(f"buffer capacity {capacity} is too small for {n_envs} env(s)")
        self.n_envs = n_envs
        self.rows = capacity // n_envs
        self.obs = np.zeros((n_envs, self.rows, obs_dim), np.float32)
        self.action = np.zeros((n_envs, self.rows, action_dim), np.float32)
        self.reward = np.zeros((n_envs, self.rows), np.float32)
        self.terminated = np.zeros((n_envs, self.rows), bool)
        self.valid = np.zeros((n_envs, self.rows), bool)  # row starts a complete transition
        self.ptr = np.zeros(n_envs, np.int64)  # next row to write, per env
        self.filled = np.zeros(n_envs, np.int64)  # rows written so far, at most ``rows``
        self.open = np.zeros(n_envs, bool)  # last written row is the obs of an ongoing episode
        self.transitions = 0  # complete transitions ever added
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return int(self.valid.sum())

    def _write_obs(self, e: int, obs: np.ndarray) -> int:
        r = int(self.ptr[e])
        self.obs[e, r] = obs
        self.valid[e, r] = False
        self.ptr[e] = (r + 1) % self.rows
        self.filled[e] = min(self.filled[e] + 1, self.rows)
        return r

    def add(self, obs, action, reward, terminated, truncated, next_obs) -> None:
        """Add one transition per env (arrays with a leading ``n_envs`` axis).

        ``next_obs`` must be the real next observation, the final one at an episode end.
        """
        for e in range(self.n_envs):
            if self.open[e]:
                r = (int(self.ptr[e]) - 1) % self.rows
            else:
                r = self._write_obs(e, obs[e])
            self.action[e, r] = action[e]
            self.reward[e, r] = reward[e]
            self.terminated[e, r] = terminated[e]
            self._write_obs(e, next_obs[e])
            self.valid[e, r] = True
            self.open[e] = not (terminated[e] or truncated[e])
        self.transitions += self.n_envs

    def sample_indices(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (env, row) pairs drawn uniformly among complete transitions: a row drawn
        uniformly among all envs' written rows (envs whose episodes are shorter have written
        more rows: their final observations), those that start no transition drawn again."""
        if not self.valid.any():
            raise ValueError("cannot sample from an empty replay buffer")
        env = np.empty(n, np.int64)
        row = np.empty(n, np.int64)
        todo = np.arange(n)
        ends = np.cumsum(self.filled)
        while todo.size:
            flat = (self.rng.random(todo.size) * ends[-1]).astype(np.int64)
            e = np.searchsorted(ends, flat, side="right")
            r = flat - (ends[e] - self.filled[e])
            env[todo], row[todo] = e, r
            todo = todo[~self.valid[e, r]]
        return env, row

    def sample(self, batch_size: int, gamma: float, k: int = 1, n_step: int = 1) -> Batch:
        """``k`` batches of ``batch_size`` transitions, stacked on a leading axis.

        With ``n_step > 1`` each transition carries the discounted sum of up to ``n_step``
        rewards of its episode; it stops early at a termination (no bootstrap), at the end of an
        episode by time limit (bootstrap from the real final observation) and at the newest
        stored step. ``discount`` is then gamma**m * (1 - terminated) for the m steps taken.
        """
        e, r = self.sample_indices(k * batch_size)
        reward = self.reward[e, r].astype(np.float64)
        alive = ~self.terminated[e, r]
        discount = gamma * alive
        steps = np.ones_like(r)
        for i in range(1, n_step):
            q = (r + i) % self.rows
            cont = alive & self.valid[e, q]  # the episode goes on and row q is a transition
            reward += np.where(cont, gamma**i * self.reward[e, q], 0.0)
            alive = cont & ~self.terminated[e, q]
            discount = np.where(cont, gamma ** (i + 1) * ~self.terminated[e, q], discount)
            steps += cont
        shape = (k, batch_size)
        return Batch(
            obs=self.obs[e, r].reshape(*shape, -1),
            action=self.action[e, r].reshape(*shape, -1),
            reward=reward.astype(np.float32).reshape(shape),
            discount=discount.astype(np.float32).reshape(shape),
            next_obs=self.obs[e, (r + steps) % self.rows].reshape(*shape, -1),
        )

    # ------------------------------------------------------------------ sequences
    def _starts(self) -> tuple[np.ndarray, np.ndarray]:
        """(env, row) of every stored episode's first transition. A full ring's oldest row
        (at ``ptr``) is left out: what came before it is overwritten, so it may be the middle
        of an episode (a task whose cue is at the start would lose it); a true start there is
        dropped too, at most one per env. Only if no start is left at all (episodes longer
        than a ring) are those oldest rows used."""
        first = self.valid & ~np.roll(self.valid, 1, axis=1)
        full = np.flatnonzero(self.filled == self.rows)
        oldest = first[full, self.ptr[full]].copy()
        first[full, self.ptr[full]] = False
        if not first.any():
            first[full, self.ptr[full]] = oldest
        return np.nonzero(first)

    def sample_windows(self, n: int, gamma: float, k: int, length: int, burn_in: int = 0,
                       whole_episodes: bool = False) -> SequenceBatch:
        """``k`` batches of ``n`` windows of ``burn_in + length`` steps, each inside one
        episode (rows are read in place: the buffer stores every transition once).

        A window's first trained step is drawn uniformly among stored transitions (with
        ``whole_episodes``: among episode starts); up to ``burn_in`` earlier steps of the same
        episode come before it to warm the recurrent state. Steps past the episode's end are
        padding, masked out; truncated episodes keep their bootstrap, terminated ones not.
        """
        N = k * n
        if whole_episodes:
            env_s, row_s = self._starts()
            if not env_s.size:
                raise ValueError("cannot sample from an empty replay buffer")
            pick = self.rng.integers(0, env_s.size, N)
            e, s = env_s[pick], row_s[pick]
        else:
            e, s = self.sample_indices(N)
        back = np.zeros(N, np.int64)  # burn-in steps available before s in its episode
        if burn_in:
            back = leading_run(
                self.valid[e[:, None], (s[:, None] - np.arange(1, burn_in + 1)) % self.rows])
        W = burn_in + length
        rows = (s - back)[:, None] + np.arange(W + 1)
        rows %= self.rows
        ee, steps = e[:, None], rows[:, :W]
        inside = np.cumprod(self.valid[ee, steps], axis=1).astype(bool)
        return sequence_batch(self.obs[ee, rows], self.action[ee, steps],
                              self.reward[ee, steps], self.terminated[ee, steps], inside, back,
                              gamma, k, n)

    # ------------------------------------------------------------------ save / load
    _ARRAYS = ("obs", "action", "reward", "terminated", "valid")

    def state(self) -> dict:
        """Arrays (only the rows written so far) and counters, for an exact restore."""
        used = int(self.filled.max())
        out = {f"buffer/{k}": getattr(self, k)[:, :used] for k in self._ARRAYS}
        out["buffer/counters"] = np.stack([self.ptr, self.filled, self.open.astype(np.int64)])
        out["buffer/transitions"] = np.asarray(self.transitions)
        return out

    def load_state(self, state: dict, rng_state: dict) -> None:
        for k in self._ARRAYS:
            src = np.asarray(state[f"buffer/{k}"])
            dst = getattr(self, k)
            if src.shape[0] != dst.shape[0] or src.shape[2:] != dst.shape[2:] or src.shape[1] > dst.shape[1]:
                raise ValueError(f"saved buffer '{k}' has shape {src.shape}, expected {dst.shape}")
            dst[:, : src.shape[1]] = src
        self.ptr, self.filled, opened = (np.asarray(c, np.int64) for c in state["buffer/counters"])
        self.open = opened.astype(bool)
        self.transitions = int(state["buffer/transitions"])
        self.rng.bit_generator.state = rng_state

    def episodes(self) -> list[dict]:
        """The stored data as episodes, oldest first per env: dicts of observations (T+1, the
        real final one last), actions, rewards, terminations, truncations. An episode still
        running (or whose start was overwritten) ends in a truncation and is marked ``cut``."""
        out = []
        for e in range(self.n_envs):
            n = int(self.filled[e])
            order = (np.arange(n) + (int(self.ptr[e]) if n == self.rows else 0)) % self.rows
            valid = self.valid[e, order]
            start = None
            for i in range(n):
                if valid[i] and start is None:
                    start = i
                elif not valid[i] and start is not None:
                    rows, last = order[start:i], order[i]
                    term = self.terminated[e, rows].copy()
                    newest = i == n - 1 and self.open[e]
                    oldest = start == 0 and n == self.rows  # what came before: overwritten
                    trunc = np.zeros(len(rows), bool)
                    trunc[-1] = not term[-1]
                    out.append({"observations": self.obs[e, np.append(rows, last)],
                                "actions": self.action[e, rows], "rewards": self.reward[e, rows],
                                "terminations": term, "truncations": trunc,
                                "cut": bool(newest or oldest)})
                    start = None
        return out
