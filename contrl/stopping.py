"""Stopping on SIGINT/SIGTERM at a safe point instead of wherever the signal lands."""
from __future__ import annotations

import contextlib
import signal
import sys

_watching: list["StopFlag"] = []  # the flag of watching_from_start, while it watches


@contextlib.contextmanager
def watching_from_start():
    """Watch SIGINT/SIGTERM from here on with a StopFlag whose first signal the StopFlag that
    `contrl train` sets up later takes over and acts on. Python's own handler raises
    KeyboardInterrupt wherever the process is, and one raised inside a garbage-collection
    callback (JAX has one) is printed and dropped: a run stopped during its imports trained
    on to the end."""
    with StopFlag() as early:
        _watching.append(early)
        try:
            yield
        finally:
            _watching.pop()


class Interrupted(KeyboardInterrupt):
    """A stop by the signal ``signum`` before anything was made."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopFlag:
    """SIGINT/SIGTERM set a flag (and remember which signal); the loop saves a checkpoint at
    the next safe point. A second signal stops at once (KeyboardInterrupt). A signal that
    ``watching_from_start`` caught before this flag was set up counts as its first."""

    def __init__(self):
        self.raised = False
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        if _watching and _watching[-1].raised:  # taken over: a later one is a new first signal
            early = _watching[-1]
            self.raised, self.signum = True, early.signum
            early.raised, early.signum = False, None
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised, self.signum = True, signum
        print("contrl: stopping at the next safe point (signal again to stop at once)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
