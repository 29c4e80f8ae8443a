"""Stopping on SIGINT/SIGTERM at a safe point instead of wherever the signal lands."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
NOTICE = "contrl: stopping at the next safe point (signal again to stop at once)"

_early: list[int] = []  # a signal that came before any StopFlag watched (see watching_from_start)


@contextlib.contextmanager
def watching_from_start():
    """Record the first SIGINT/SIGTERM within, for the StopFlag that `contrl train` sets up
    later to act on (a second one raises KeyboardInterrupt). Python's own handler raises
    KeyboardInterrupt wherever the process is, and one raised inside a garbage-collection
    callback (JAX has one) is printed and dropped: a run stopped during its imports trained
    on to the end."""
    if threading.current_thread() is not threading.main_thread():  # signals are the main's
        yield
        return
    old = {sig: signal.signal(sig, _record) for sig in SIGNALS}
    try:
        yield
    finally:
        _early.clear()
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _record(signum, frame):
    if _early:
        raise KeyboardInterrupt
    _early.append(signum)
    print(NOTICE, file=sys.stderr, flush=True)


class Interrupted(KeyboardInterrupt):
    """A stop by the signal ``signum`` before anything was made."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class StopFlag:
    """SIGINT/SIGTERM set a flag (and remember which signal); the loop saves a checkpoint at
    the next safe point. A second signal stops at once (KeyboardInterrupt). A signal recorded
    by ``watching_from_start`` before this flag was set up counts as its first."""

    def __init__(self):
        self.raised = False
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        if _early:
            self.raised, self.signum = True, _early.pop()
        for sig in SIGNALS:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.raised:
            raise KeyboardInterrupt
        self.raised, self.signum = True, signum
        print(NOTICE, file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
