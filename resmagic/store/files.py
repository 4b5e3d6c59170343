"""The store's file on disk: made private, reached through no link, and opened only if ours.

reliability 2026-12-06 #7, #8, #11: a user's own SQLite file named as the store was switched
to WAL and given resmagic's tables without a word; ``/dev/null`` was accepted as a store; the
store (paths, error texts) was world-readable; a symlink at its path was followed.

- A file resmagic creates is 0600 (SQLite gives its ``-wal``/``-shm`` the database's mode),
  in folders resmagic creates 0700, as ``ssh`` and ``git-credential`` keep theirs; a folder
  that is there already (IPython's profile folder) is left as it is.
- It is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``: a link planted at the path is never
  followed, and a link found there is refused.
- An existing file is written only once it is known to be a resmagic store: its header and,
  where needed, a read-only look at its tables come first, before any PRAGMA that writes.
  New stores carry :data:`APPLICATION_ID`; stores made before it are known by their tables.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Literal

from resmagic.errors import PathError

__all__ = ["APPLICATION_ID", "Kind", "create", "examine", "make_private", "usable"]

APPLICATION_ID = int.from_bytes(b"RMst", "big")
"""``PRAGMA application_id`` of a resmagic run store (offset 68 of the SQLite header)."""

Kind = Literal["missing", "empty", "store", "old store"]
"""What is at a store path: nothing, an empty file or database, a store, a store made before
resmagic set its application id (user_version 1, its own tables only)."""

_MAGIC = b"SQLite format 3\x00"
_OWN_TABLES = {"sessions", "reports", "sqlite_sequence"}
_WHAT_TO_TYPE = (
    "name a file of its own: %resmagic config store=~/resmagic-runs.sqlite"
    " (or c.ResMagic.store in ipython_kernel_config.py), or store=off"
)


def examine(path: str) -> Kind:
    """What is at ``path``, read without changing it (no write, no PRAGMA that writes).

    Raises:
        PathError: a link, a folder, a device or FIFO, a file that is not SQLite, or a
            database that is not a resmagic store (its message says what to type).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:  # a file where a folder should be, a folder we may not enter
        msg = f"cannot use {path} for the run store: {exc.strerror}; {_WHAT_TO_TYPE}"
        raise PathError(msg) from None
    _regular(path, st.st_mode)
    if st.st_size == 0:
        return "empty"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            header = os.pread(fd, 100, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        msg = f"cannot read {path}: {exc.strerror}; {_WHAT_TO_TYPE}"
        raise PathError(msg) from None
    if not header.startswith(_MAGIC):
        msg = f"{path} is not an SQLite database, so not a resmagic run store; {_WHAT_TO_TYPE}"
        raise PathError(msg)
    if int.from_bytes(header[68:72], "big") == APPLICATION_ID:
        return "store"
    return _judge(path, *_peek(path))


def _regular(path: str, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    if stat.S_ISLNK(mode):
        msg = (
            f"{path} is a symbolic link: resmagic follows no link at the run store's path"
            f" (one in a shared folder could point at another file of yours); name the file"
            f" itself: %resmagic config store={os.path.realpath(path)}, or remove the link"
        )
    elif stat.S_ISDIR(mode):
        inside = os.path.join(path, "resmagic.sqlite")
        msg = f"{path} is a folder: name a file in it, e.g. %resmagic config store={inside}"
    else:
        what = "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"
        msg = f"{path} is {what}, not a file the run store can live in; {_WHAT_TO_TYPE}"
    raise PathError(msg)


def _peek(path: str) -> tuple[int, int, set[str]]:
    """application_id, user_version and table names, through a read-only connection.

    Without a ``-wal`` beside it the main file is the whole database: read it as immutable
    (no ``-shm`` is made next to another program's file). With one, a read-only connection
    sees the newest commits (a store killed before its first checkpoint) and never
    checkpoints another program's log into its file.
    """
    wal = Path(path + "-wal")
    immutable = "" if wal.exists() and wal.stat().st_size > 0 else "&immutable=1"
    uri = f"{Path(path).absolute().as_uri()}?mode=ro{immutable}"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10.0)
        try:
            (app,) = conn.execute("PRAGMA application_id").fetchone()
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        msg = f"cannot read {path} as an SQLite database ({exc}); {_WHAT_TO_TYPE}"
        raise PathError(msg) from None
    return int(app), int(version), {name for (name,) in rows}


def _judge(path: str, app: int, version: int, tables: set[str]) -> Kind:
    if app == APPLICATION_ID:
        return "store"
    if app == 0 and version == 0 and not tables:
        return "empty"  # holds nothing: nothing of anyone's to change
    if app == 0 and version == 1 and {"sessions", "reports"} <= tables <= _OWN_TABLES:
        return "old store"
    names = ", ".join(sorted(tables)) or "none"
    msg = (
        f"{path} is an SQLite database that is not a resmagic run store (tables: {names};"
        f" user_version {version}); resmagic leaves it as it is: {_WHAT_TO_TYPE}"
    )
    raise PathError(msg)


def usable(path: str) -> None:
    """Refuse, before anything is written, a path the run store cannot use.

    Raises:
        PathError: what :func:`examine` refuses, or a missing file whose folder cannot be
            made or written.
    """
    if examine(path) != "missing":
        return
    folder = os.path.dirname(path) or "."
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        msg = f"cannot create {path}: {folder} is a file, not a folder; {_WHAT_TO_TYPE}"
        raise PathError(msg)
    if not os.access(folder, os.W_OK | os.X_OK):
        msg = f"cannot create {path}: the folder {folder} is not writable; {_WHAT_TO_TYPE}"
        raise PathError(msg)


def create(path: str) -> None:
    """Make the store's file 0600 (and missing folders 0700); another process's is fine.

    Raises:
        OSError: the folder or the file cannot be made.
    """
    missing: list[str] = []
    folder = os.path.dirname(path)
    while folder and not os.path.isdir(folder):
        missing.append(folder)
        folder = os.path.dirname(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(FileExistsError):  # another kernel's: examine() looks again
        os.close(os.open(path, flags, 0o600))


def make_private(path: str) -> None:
    """0600 for a store this version adopts (made by an older one, or empty), if it is ours."""
    for name in (path, path + "-wal", path + "-shm"):
        try:
            st = os.lstat(name)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
                os.chmod(name, 0o600)
        except OSError:
            pass  # gone meanwhile, or not ours to change
