"""Exceptions raised for a caller's mistakes, each rooted in the builtin a caller would catch.

Every message says what was wrong and what to type instead. The IPython layer turns any
:class:`ResmagicError` into a ``UsageError`` before the cell body runs.
"""

from __future__ import annotations

__all__ = [
    "DatabaseLockedError",
    "DeviceError",
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
