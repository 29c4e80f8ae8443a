"""Errors that the command line reports as one line, without a traceback."""


class ContrlError(Exception):
    """Base class: anything a user can cause and fix."""


class UnknownIdError(ContrlError):
    """An unknown algorithm or environment id."""


class CheckpointError(ContrlError):
    """A missing, corrupted or foreign checkpoint."""


class NonFiniteLossError(ContrlError):
    """A loss became NaN or infinite during training."""
