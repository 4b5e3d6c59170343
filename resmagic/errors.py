"""Exceptions resmagic raises, each rooted in the builtin a caller would catch.

Every message says what was wrong and what to type instead. The IPython layer turns any
:class:`ResmagicError` (a caller's mistake) into a ``UsageError`` before the cell body runs;
:class:`MemoryLimitError` is not a mistake but the memory guard stopping a running cell.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "DatabaseLockedError",
    "DeviceError",
    "MemoryLimitError",
    "NotADatabaseError",
    "OptionError",
    "PathError",
    "ResmagicError",
]


class ResmagicError(Exception):
    """Base of every error resmagic raises for bad input; never raised for 'no GPU'."""


class OptionError(ResmagicError, ValueError):
    """An option has a value the scope does not accept."""


class DeviceError(ResmagicError, ValueError):
    """A device that does not exist here, or is spelled in a way we cannot read."""


class PathError(ResmagicError, ValueError):
    """A file path that cannot be used: a directory, unwritable, or with a missing parent."""


class NotADatabaseError(ResmagicError, ValueError):
    """A file that exists but is not an SQLite database."""


class DatabaseLockedError(ResmagicError, TimeoutError):
    """Another connection held the database lock for longer than the timeout."""


class MemoryLimitError(MemoryError):
    """The memory guard stopped a cell before the container's OOM killer would have.

    A ``MemoryError``, so ``except MemoryError`` and ``gpu_scope``'s out-of-memory reclaim
    treat it as one. The guard raises it in the running thread by calling a class with no
    arguments (the way CPython delivers an exception into another thread), so each stop
    makes a subclass of this one whose attributes carry what was measured.

    Attributes:
        limit_bytes: the container's memory limit.
        used_bytes: its working set when the guard fired.
        cell: the cell (or block) it stopped, in words.
    """

    message: ClassVar[str] = "stopped by resmagic's memory guard"
    limit_bytes: ClassVar[int] = 0
    used_bytes: ClassVar[int] = 0
    cell: ClassVar[str] = ""

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or (self.message,)))
