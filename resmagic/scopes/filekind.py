"""What is at a path: a regular file, nothing, or something a log or database cannot be."""

from __future__ import annotations

import os
import stat

from resmagic.errors import PathError

__all__ = ["file_kind", "names_a_folder", "nearest_existing"]


def file_kind(path: str) -> str | None:
    """``"file"`` for a regular file (or a symlink to one), None when nothing is there.

    Anything else is named in words for a message: ``"a directory"``, ``"a device"``,
    ``"a FIFO (named pipe)"``, ``"a socket"``. Writing a log or a database into one of
    those fails late (``/dev/full``: at the block's end), hangs (a FIFO with no reader) or
    silently drops everything (reliability 2026-12-06 #9).

    Raises:
        PathError: the path cannot even be looked at (a symlink loop, no permission, a NUL
            character).
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # the caller says which folder is missing
        return None
    except OSError as exc:
        msg = f"cannot use {path!r}: {exc.strerror or exc}"
        raise PathError(msg) from None
    except ValueError:  # "embedded null byte": no file system takes the name
        msg = f"cannot use {path!r}: a path cannot hold a NUL character"
        raise PathError(msg) from None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    return "a socket" if stat.S_ISSOCK(mode) else "not a regular file"


def names_a_folder(path: str) -> bool:
    """True for a path written as a folder (``runs/``, ``runs/.``): it makes a file ``runs``."""
    last = path.replace(os.altsep, os.sep) if os.altsep else path
    return last.rsplit(os.sep, 1)[-1] in ("", ".", "..")


def nearest_existing(path: str) -> str:
    """``path`` itself or its nearest ancestor that exists (a file in the way, or a folder)."""
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path
