"""This notebook's dead kernels: which cells they died in, found on the store's writer thread.

A new kernel asks once, as its store starts (:mod:`resmagic.ipython.storestart`). The
lookup and the marking (:mod:`resmagic.store.died`) run as a job of the writer thread, where
that module is imported too: it is on no cell's path and not on ``%load_ext``'s.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from resmagic.store.died import Death
    from resmagic.store.recorder import Recorder
    from resmagic.store.statefile import State
    from resmagic.store.writer import Pending

__all__ = ["Found", "find", "find_later", "said"]

Found = tuple[list["Death"], list["State"]]
"""The cells marked ``died``, and the state files that said so (removed once said)."""


def find(recorder: Recorder, timeout: float = 30.0) -> list[Death]:
    """Mark the cells this notebook's dead kernels died in ``died``; what each said.

    Raises:
        PathError: the store's path holds something that is not a resmagic store.
        sqlite3.Error, OSError: the store cannot be opened or written.
    """
    pending = find_later(recorder)
    if pending is None:
        return []
    recorder.wait(pending, timeout)
    return said(pending)


def find_later(recorder: Recorder) -> Pending[Found] | None:
    """:func:`find` queued on the writer thread, not waited for (None: the store is off).

    Raises:
        PathError: the store's path holds something that is not a resmagic store.
    """
    notebook = recorder.rows_notebook()
    writer = recorder.writer()
    if writer is None:
        return None
    return writer.submit(_dead_kernels, notebook, writer.path, result=True)


def said(pending: Pending[Found]) -> list[Death]:
    """What a done :func:`find_later` found; the state files it settled are removed.

    Raises:
        sqlite3.Error, OSError: the job failed (the store cannot be opened or written).
    """
    if pending.error is not None:
        raise pending.error
    deaths, done = pending.result(0) or ([], [])
    for state in done:  # committed: the next kernel need not read them again
        with contextlib.suppress(OSError):
            os.unlink(state.path)
    return deaths


def _dead_kernels(conn: sqlite3.Connection, notebook: str | None, store: str) -> Found:
    # Imported on the writer thread: a new kernel asks once, and not on %load_ext's path.
    from resmagic.store.died import dead_kernels

    return dead_kernels(conn, notebook, store)
