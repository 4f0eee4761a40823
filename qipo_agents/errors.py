"""Exceptions raised by qipo_agents.

Every error says what was wrong and what to do about it. They subclass the builtin
exception a caller would naturally catch (``ValueError``, ``FileNotFoundError``), so
code written against the standard library keeps working.
"""


class QIPOError(Exception):
    """Base class of every error raised on purpose by qipo_agents."""


class DatasetError(QIPOError, ValueError):
    """An offline dataset is malformed: NaN/inf values, no transitions, misaligned arrays."""


class DatasetNotFoundError(QIPOError, FileNotFoundError):
    """A dataset is neither available locally nor downloadable right now."""


class SpaceMismatchError(QIPOError, ValueError):
    """Observations or actions do not match the shapes the agent or environment expects."""


class SaveFileError(QIPOError, ValueError):
    """A save file is corrupt, foreign (not a qipo_agents save) or from a newer format."""


class ConfigError(QIPOError, ValueError):
    """A zoo configuration is invalid: unknown task, unknown key or wrong type."""
