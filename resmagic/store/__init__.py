"""The embedded run store: every report in SQLite, across kernel restarts and crashes.

On by default in IPython (``profile_default/resmagic.sqlite`` beside IPython's
``history.sqlite``), off in scripts unless ``settings.store`` names a file. Read it back with
:func:`runs` (a DataFrame) or ``%resmagic runs``. Importing this package does not import
sqlite3; the first write or read does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resmagic.store.paths import default_path, resolve

if TYPE_CHECKING:
    import pandas

    from resmagic.store.query import LastRun

__all__ = ["default_path", "last_run", "resolve", "runs"]


def runs(
    notebook: str | None = None,
    cell: int | str | None = None,
    since: Any = None,
    code: str | None = None,
    *,
    path: str | None = None,
) -> pandas.DataFrame:
    """Every stored report across sessions, tidy: one row per report and device, oldest first.

    Args:
        notebook: only this notebook's (its path, as ``__session__`` says it).
        cell: only this cell: its number (``In[n]``) or its cell id.
        since: only those started at or after: a datetime, a timedelta back from now,
            seconds since the epoch, or ISO text.
        code: only runs of this exact cell code (compared by hash; the code is not stored).
        path: the store to read (default: ``settings.store``, else the profile's).

    Columns include ``session``, ``notebook``, ``cell``, ``cell_id``, ``scope``, ``label``,
    ``status`` (``ok``, ``error``, ``interrupted``, ``died``, ``running``), ``started_at``
    (UTC), ``duration_s``, ``device``, ``before_bytes``, ``peak_bytes``, ``after_bytes``.

    Raises:
        ImportError: pandas is not installed; the message says how to install it.
    """
    from resmagic.store.query import frame
    from resmagic.store.recorder import recorder

    return recorder.read(lambda conn: frame(conn, notebook, cell, since, code), _path(path))


def last_run(
    scope: str,
    *,
    notebook: str | None = None,
    cell_id: str | None = None,
    code: str | None = None,
    path: str | None = None,
) -> LastRun | None:
    """The newest finished run of ``scope`` in that cell (notebook, cell id), else of ``code``."""
    from resmagic.store.query import last_run as query
    from resmagic.store.recorder import recorder
    from resmagic.store.rows import code_sha

    sha = code_sha(code) if code is not None else None
    return recorder.read(
        lambda conn: query(conn, scope=scope, notebook=notebook, cell_id=cell_id, code_sha=sha),
        _path(path),
    )


def _path(path: str | None) -> str:
    from resmagic.config import settings

    return resolve(path) if path else (settings.store or default_path())
