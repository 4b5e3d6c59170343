"""What one row holds: a report, or a cell still running, with where and when it ran.

The cell's code is never stored, only a hash of it (:func:`code_sha`). Device rows go in a
JSON column, one object per device, so a report is one row however many devices it has. A
``ranks=True`` report's rank table goes whole into ``extra`` (``ranks``), and each rank's
host and GPU rows join the device rows as ``rank N`` and ``rank N cuda:M`` (with ``rank``),
as a cell that launched ranks has them: no new column.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from resmagic.ranktable import rank_device_rows
from resmagic.report import Report, fields_of, plain
from resmagic.store.liveness import Identity

__all__ = ["CellRun", "Session", "code_sha", "insert_report", "insert_reports", "insert_session"]

DIED = "the kernel died while this cell ran"
"""The error text of a ``died`` row."""

_KNOWN = {"scope", "status", "duration_s", "started_at", "cell", "error", "devices", "notes"}
# to_dict() less the columns of their own and holders: the JSON of the extra column
# (built field by field for the writer thread, issue 26: the whole dict, then a second one
# without the columns, was 6.7 of its ~14 µs per timed report in a loop).
_EXTRA_SKIP = frozenset(_KNOWN | {"holders"})


_ids = itertools.count()
_prefix = [uuid.uuid4().hex[:12]]


def new_id() -> str:
    """A run id unique across processes: a random prefix per process, then a counter.

    ``uuid4`` reads ``os.urandom`` each time: a system call that gives up the GIL on the
    cell's path; the counter does not. A forked child takes a prefix of its own as it starts
    (not an ``os.getpid()`` per id, a system call too: issue 26 C1).
    """
    return f"{_prefix[0]}{next(_ids):x}"


def _new_prefix() -> None:
    _prefix[0] = uuid.uuid4().hex[:12]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_prefix)


def code_sha(code: str) -> str:
    """A short, stable name for a cell's source: the first 16 hex digits of its SHA-256.

    The same name watch mode's ``--log`` gives a cell (``code_sha256``).
    """
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Session:
    """One process writing the store: a kernel, a terminal IPython, a script."""

    session: str
    identity: Identity
    notebook: str | None
    version: str


@dataclass(slots=True)
class CellRun:
    """One run of one cell: its running row, and the reports it ends with share ``run``.

    Attributes:
        scope: the cell's scopes, e.g. ``"timed,gpu_scope"`` (what the running row says).
        label: the first label or path among them, if any.
        live: the devices sampled while it runs: name → before/peak/after/total bytes.
        oom_kills: the container's OOM-kill counter when it started.
        written: its running row is in the store (a cell that ends before the writer gets
            to it never has one).
        opened: the readings its ``gpu_scope`` took as it opened (``DeviceMemory``), for the
            running row's "before": the writer's first sample comes later, after what the
            cell allocated first.
        each_report: a cell that is not measured (``with timed():`` in a plain cell): it has
            no running row, and each of its reports is a run of its own (its row gets a
            fresh ``run`` id), so one object serves all of them.
        kept: reports stored so far, per scope and label (``settings.store_per_cell``).
        own: the measured cell's own scopes: their reports are stored past that cap.
    """

    notebook: str | None
    cell_id: str | None
    cell: int | None
    code_sha: str | None
    scope: str = "cell"
    label: str | None = None
    started_at: float = field(default_factory=time.time)
    run: str = field(default_factory=lambda: new_id())
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    oom_kills: int | None = None
    written: bool = False
    opened: Callable[[], Sequence[Any]] | None = None
    each_report: bool = False
    kept: dict[tuple[str, str | None], int] = field(default_factory=dict)
    own: tuple[Any, ...] = ()


def label_of(report: Report) -> str | None:
    """The row's label column: the report's label, else its path (a log, a database)."""
    return getattr(report, "label", None) or getattr(report, "path", None) or None


def insert_session(conn: sqlite3.Connection, s: Session) -> None:
    """Record the process (again: a row per session, replaced)."""
    ident = s.identity
    conn.execute(
        "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            s.session,
            ident.host,
            ident.pid,
            ident.boot,
            ident.pid_start,
            s.notebook,
            time.time(),
            s.version,
        ),
    )


def insert_running(conn: sqlite3.Connection, run: CellRun, session: str) -> None:
    """The row that says a cell is running (status ``running``), until it ends."""
    conn.execute(
        "INSERT INTO reports (run, session, notebook, cell_id, cell, code_sha, scope, label,"
        " status, started_at, updated_at, devices, oom_kills)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
        (
            run.run,
            session,
            run.notebook,
            run.cell_id,
            run.cell,
            run.code_sha,
            run.scope,
            run.label,
            run.started_at,
            time.time(),
            _devices_json(run),
            run.oom_kills,
        ),
    )


def update_running(conn: sqlite3.Connection, run: CellRun) -> None:
    """Write the running row's live peak and how long it has run so far."""
    now = time.time()
    conn.execute(
        "UPDATE reports SET devices = ?, updated_at = ?, duration_s = ?"
        " WHERE run = ? AND status = 'running'",
        (_devices_json(run), now, now - run.started_at, run.run),
    )


def end_running(conn: sqlite3.Connection, run: CellRun) -> None:
    """The cell ended: its running row goes (its reports carry the figures)."""
    conn.execute("DELETE FROM reports WHERE run = ? AND status = 'running'", (run.run,))


_INSERT_REPORT = (
    "INSERT INTO reports (run, session, notebook, cell_id, cell, code_sha, scope, label,"
    " status, started_at, duration_s, updated_at, devices, holders, notes, extra, error)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_report(
    conn: sqlite3.Connection, report: Report, run: CellRun | None, session: Session
) -> None:
    """One report as one row; ``run`` None: a report outside any measured cell (a script)."""
    conn.execute(_INSERT_REPORT, _report_row(report, run, session))


def insert_reports(
    conn: sqlite3.Connection, queued: Sequence[tuple[Report, CellRun | None, Session]]
) -> None:
    """:func:`insert_report` for each of ``queued``, in one ``executemany``.

    Issue 26 C1: the writer thread's batch of back-to-back cells' reports; one statement
    and one cursor for them all instead of one each (~3 µs a report of GIL time).
    """
    conn.executemany(_INSERT_REPORT, [_report_row(*args) for args in queued])


def _report_row(report: Report, run: CellRun | None, session: Session) -> tuple[Any, ...]:
    extra = fields_of(report, _EXTRA_SKIP)  # to_dict() less the columns, in its order
    devices = plain(getattr(report, "devices", None)) or None
    ranks = extra.get("ranks")
    if ranks:  # issue 28: rank 0's table; its ranks' rows rank like devices
        devices = [*(devices or ()), *rank_device_rows(ranks)]
    holders = plain(getattr(report, "holders", None))  # name, kind, device, nbytes
    label = label_of(report)
    return (
        run.run if run is not None and not run.each_report else new_id(),
        session.session,
        run.notebook if run else session.notebook,
        run.cell_id if run else None,
        report.cell if report.cell is not None else (run.cell if run else None),
        run.code_sha if run else None,
        report.scope,
        label,
        report.status,
        report.started_at,
        report.duration_s,
        time.time(),
        json.dumps(devices) if devices else None,
        json.dumps(holders) if holders else None,
        "; ".join(getattr(report, "notes", None) or ()) or None,
        json.dumps(extra) if extra else None,
        report.error,
    )


def _devices_json(run: CellRun) -> str | None:
    return json.dumps(list(run.live.values())) if run.live else None
