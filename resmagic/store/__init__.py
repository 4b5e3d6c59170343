"""The embedded run store: every report in SQLite, across kernel restarts and crashes.

On by default in IPython (``profile_default/resmagic.sqlite`` beside IPython's
``history.sqlite``), off in scripts unless ``settings.store`` names a file. Read it back with
:func:`runs` (a DataFrame) or ``%resmagic runs``. Importing this package does not import
sqlite3; the first write or read does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from resmagic.store.paths import default_path, resolve

if TYPE_CHECKING:
    import pandas

    from resmagic.store.query import LastRun
    from resmagic.store.ranking import TopQuery

__all__ = ["default_path", "last_run", "ranked_device", "resolve", "runs", "top"]

# Patterns, compiled on first use (re keeps them): compiling both at import was 0.5 ms of
# %load_ext, whose path this package is on.
_GPU = r"cuda:[0-9]+(?:\.nvml)?"
_RANKED = rf"host|{_GPU}|rank [0-9]+(?: {_GPU})?"  # a rank's rows: "rank 1 cuda:0"


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


def top(
    n: int | None = 10,
    by: str = "peak",
    session: str = "all",
    device: str | None = None,
    *,
    notebook: str | None = None,
    path: str | None = None,
) -> Any:
    """This notebook's cells that used the most, from the run store: across restarts.

    Each cell once (its last run, with ``runs``: how many), ranked by ``by``: ``"peak"``
    (the peak above the memory in use when the cell started), ``"held"`` (in use after the
    cell minus before) or ``"time"`` (wall seconds). Memory ranks per device (``host``,
    ``cuda:0``, ``cuda:0.nvml``; never ``workers`` or ``container``); with no ``device``
    each cell by its largest. A cell its kernel died in ranks with what it had, ``status``
    ``died``. ``cell_id`` is the notebook's id of the cell (Jupyter sends it).

    Args:
        n: how many cells (None: all).
        by: ``"peak"``, ``"held"`` or ``"time"``.
        session: ``"all"`` (every kernel session of the notebook) or ``"this"`` (this one).
        device: rank this device only.
        notebook: the notebook's path (default: the one this kernel runs; outside a
            notebook, every notebook's rows).
        path: the store to read (default: ``settings.store``, else the profile's).

    Returns:
        A DataFrame when pandas is installed, else a list of dicts, with the columns of
        :data:`resmagic.store.ranking.COLUMNS`, highest first.

    Raises:
        ValueError: ``by``, ``session``, ``n`` or ``device`` is not one of those.
    """
    from resmagic.store.ranking import COLUMNS, plain_rows, top_of
    from resmagic.store.recorder import recorder
    from resmagic.tidy import as_frame

    query = top_query(n, by, session, device, notebook)
    found = recorder.read(lambda conn: top_of(conn, query), _path(path))
    rows = plain_rows(found, query.by)
    try:
        import pandas
    except ImportError:
        return rows
    return as_frame(pandas, rows, COLUMNS, ints=("cell", "rank", "runs"))


def top_query(
    n: int | None, by: str, session: str, device: str | None, notebook: str | None
) -> TopQuery:
    """What :func:`top` ranks: checked, and scoped to this notebook/session when known.

    Raises:
        ValueError: ``by``, ``session``, ``n`` or ``device`` is not one of those.
    """
    from resmagic.store.ranking import TopQuery
    from resmagic.store.recorder import recorder
    from resmagic.topcells import BY

    if by not in BY:
        msg = f"by takes one of {', '.join(BY)}, not {by!r}"
        raise ValueError(msg)
    if session not in ("all", "this"):
        msg = f"session takes 'all' or 'this', not {session!r}"
        raise ValueError(msg)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        msg = f"n takes a positive number or None, not {n!r}"
        raise ValueError(msg)
    if device is not None:
        device = ranked_device(device)
    mine = recorder.session
    if notebook is None and mine is not None:
        notebook = mine.notebook
    this = mine.session if mine is not None else None
    return TopQuery(
        n=n,
        by=by,  # checked against BY above
        notebook=notebook,
        session=(this or "") if session == "this" else None,
        device=device,
        any_notebook=notebook is None,
    )


def ranked_device(device: object) -> str:
    """``device`` as :func:`top` ranks it (``N`` alone is ``cuda:N``).

    ``host``, ``cuda:N``, ``cuda:N.nvml``, and a rank's rows ``rank R`` and ``rank R cuda:N``.

    Raises:
        ValueError: anything else (``workers`` and ``container`` are other processes' memory).
    """
    text = device.strip() if isinstance(device, str) else None
    if isinstance(device, int) and not isinstance(device, bool):
        text = str(device)
    if text is not None and text.isascii() and text.isdigit():
        text = f"cuda:{text}"
    if text is None or not re.fullmatch(_RANKED, text):
        msg = (
            "device takes host, cuda:N (torch's allocator), cuda:N.nvml or a rank's"
            f" (rank R, rank R cuda:N), not {device!r}"
        )
        raise ValueError(msg)
    return re.sub(r"[0-9]+", lambda n: str(int(n[0])), text)  # cuda:01 is cuda:1's rows


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
