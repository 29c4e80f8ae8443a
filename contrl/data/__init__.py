"""Replay buffers, datasets and the batch layout they hand to agents."""
from contrl.data.batch import Batch, SequenceBatch
from contrl.data.replay import ReplayBuffer

__all__ = ["Batch", "ReplayBuffer", "SequenceBatch"]
