"""Replay buffers and datasets."""
from contrl.data.replay import ReplayBuffer

__all__ = ["ReplayBuffer"]
