"""Cells whose kernel died: the cells a dead process's state file names become ``died``.

A new kernel looks at its own notebook's dead kernels only. What a dead kernel's state file
(:mod:`resmagic.store.statefile`) names was open when it died; a ``running`` row it does
not name had ended. Without a state file, rows still ``running`` whose process is gone
become ``died``. A process that is alive (a second kernel on the same notebook), or ran on
another host, is left alone.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resmagic.store.liveness import Identity, alive
from resmagic.store.rows import DIED
from resmagic.store.statefile import Open, State, read_dead
from resmagic.units import format_bytes, format_seconds

__all__ = ["Death", "dead_kernels", "insert_died", "mark_dead", "settled"]


@dataclass(frozen=True, slots=True)
class Death:
    """A cell the previous kernel died in, as its running row last said."""

    cell: int | None
    scope: str
    label: str | None
    seconds: float | None
    devices: tuple[dict[str, Any], ...]
    oom_kills: int | None

    def message(self, oom_kills_now: int | None = None) -> str:
        """``resmagic: the previous kernel died during cell 14 (train), ..., 12 s into it``.

        A cell killed before its first sample was written says so instead of a time.

        Args:
            oom_kills_now: the container's OOM-kill counter now; higher than when the cell
                started means the OOM killer fired.
        """
        what = f"cell {self.cell}" if self.cell is not None else "a cell"
        parts = [f"resmagic: the previous kernel died during {what} ({self.label or self.scope})"]
        memory = self._memory()
        if memory:
            parts.append(memory)
        when = "before its first sample" if self.seconds is None else "into it"
        if self.seconds is not None:
            when = f"{format_seconds(self.seconds)} {when}"
        text = ", ".join([*parts, when])
        before, now = self.oom_kills, oom_kills_now
        if before is not None and now is not None and now > before:
            text += "; the container's OOM killer fired"
        return text

    def _memory(self) -> str:
        full = [d for d in self.devices if d.get("total_bytes")]
        if not full:
            return ""
        row = max(full, key=lambda d: d["peak_bytes"] / d["total_bytes"])
        peak, total = format_bytes(row["peak_bytes"]), format_bytes(row["total_bytes"])
        if row["name"] != "host":
            return f"{row['name']} at {peak} of {total}"
        return f"{peak} of a {total} limit" if row.get("limited") else f"{peak} of {total} RAM"


_RUNNING = (
    "SELECT r.id, r.cell, r.scope, r.label, r.started_at, r.updated_at, r.devices,"
    " r.oom_kills, r.session, s.host, s.pid, s.boot, s.pid_start"
    " FROM reports r JOIN sessions s ON s.session = r.session"
    " WHERE r.status = 'running' AND r.notebook IS ? ORDER BY r.id"
)


def mark_dead(
    conn: sqlite3.Connection, notebook: str | None, states: Sequence[State] = ()
) -> list[Death]:
    """Mark the cells this notebook's dead kernels were in ``died``; what they said, in order.

    ``states``: the state files of dead processes (:func:`statefile.read_dead`). A kernel
    with one died in the cells it names and in no other: a ``running`` row of a cell it does
    not name had ended (its delete was still queued). A kernel without one (an older
    version, or a page it could not write) is judged by its ``running`` rows alone.
    """
    deaths = []
    for state in states:
        if state.complete:
            _end_unnamed(conn, state)
        if state.notebook == notebook:
            deaths += [d for run in state.runs if (d := _died(conn, state, run)) is not None]
    paged = {state.session for state in states if state.complete}  # else: the rows decide
    for row in conn.execute(_RUNNING, (notebook,)).fetchall():
        rid, cell, scope, label, started, updated, devices, ooms, session = row[:9]
        if session in paged or alive(Identity(*row[9:])) is not False:
            continue
        deaths.append(_mark(conn, rid, cell, scope, label, started, updated, devices, ooms))
    return deaths


def dead_kernels(
    conn: sqlite3.Connection, notebook: str | None, store: str
) -> tuple[list[Death], list[State]]:
    """:func:`mark_dead` with the pages beside ``store``; and the pages now said all of."""
    states = read_dead(store, alive)
    return mark_dead(conn, notebook, states), settled(states, notebook)


def settled(states: Sequence[State], notebook: str | None) -> list[State]:
    """The state files :func:`mark_dead` has said all there is to say of (to remove after)."""
    return [s for s in states if s.notebook == notebook or (s.complete and not s.runs)]


def _end_unnamed(conn: sqlite3.Connection, state: State) -> None:
    named = [run.run for run in state.runs]
    conn.execute(
        "DELETE FROM reports WHERE session = ? AND status = 'running'"
        f" AND run NOT IN ({','.join('?' * len(named))})",
        [state.session, *named],
    )


def _died(conn: sqlite3.Connection, state: State, run: Open) -> Death | None:
    """The cell ``run`` was open when its kernel died: its row says ``died``."""
    statuses = {s for (s,) in conn.execute("SELECT status FROM reports WHERE run = ?", [run.run])}
    if statuses - {"running"}:
        # Its reports were committed (it ended a moment before the page said so), or it was
        # marked died already: nothing left to say.
        conn.execute("DELETE FROM reports WHERE run = ? AND status = 'running'", [run.run])
        return None
    if statuses:
        row = conn.execute(
            "SELECT id, cell, scope, label, started_at, updated_at, devices, oom_kills"
            " FROM reports WHERE run = ? AND status = 'running'",
            [run.run],
        ).fetchone()
        return _mark(conn, *row)
    # Killed before the writer wrote its running row (it gathers jobs first): the page is
    # all there is. How long it ran is not known, only that no sample was taken.
    insert_died(conn, state, run)
    return Death(run.cell, run.scope, run.label, None, (), run.oom_kills)


def _mark(
    conn: sqlite3.Connection,
    rid: int,
    cell: int | None,
    scope: str,
    label: str | None,
    started: float,
    updated: float | None,
    devices: str | None,
    ooms: int | None,
) -> Death:
    seconds = max((updated or started) - started, 0.0)
    conn.execute(
        "UPDATE reports SET status = 'died', duration_s = ?, updated_at = ?, error = ?"
        " WHERE id = ?",
        (seconds, time.time(), DIED, rid),
    )
    return Death(cell, scope, label, seconds, tuple(json.loads(devices or "[]")), ooms)


def insert_died(conn: sqlite3.Connection, state: State, run: Open) -> None:
    """A cell a dead kernel's state file names but the store never heard of, as ``died``.

    Its session row too, if the kernel died before its first commit.
    """
    ident = state.identity
    conn.execute(
        "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            state.session,
            ident.host,
            ident.pid,
            ident.boot,
            ident.pid_start,
            state.notebook,
            state.opened_at,
            state.version,
        ),
    )
    conn.execute(
        "INSERT INTO reports (run, session, notebook, cell_id, cell, code_sha, scope, label,"
        " status, started_at, updated_at, error, oom_kills)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'died', ?, ?, ?, ?)",
        (
            run.run,
            state.session,
            state.notebook,
            run.cell_id,
            run.cell,
            run.code_sha,
            run.scope,
            run.label,
            run.started_at,
            time.time(),
            DIED,
            run.oom_kills,
        ),
    )
