"""Which cells of a notebook used the most, read back from the run store (``%resmagic top``).

The store keeps every report with the notebook, the kernel session, the cell's number and
the cell's Jupyter id (the ``cell_id`` column, recorded when the cell ran), so the ranking
outlives a restart and names the cell a dead kernel died in: the next kernel turns that
cell's running row into a ``died`` row, which ranks with the figures it had sampled.

The rules are :mod:`resmagic.topcells`'s, the same the MLflow sink's ``top_cells.json``
uses: the reports of one cell run (one ``run`` id) fold into one :class:`CellFigures`, runs of
one cell id are one cell (its last run, with how many), and ``workers``/``container`` rows
never rank.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from resmagic.cellfigures import CellFigures, cells_of, fold
from resmagic.topcells import By, Ranked, ranked

__all__ = ["COLUMNS", "TopQuery", "cell_runs", "plain_rows", "top_of"]

COLUMNS = (
    "rank",
    "by",
    "device",
    "value",
    "cell",
    "cell_id",
    "label",
    "runs",
    "status",
    "wall_s",
    "peak_above_start_bytes",
    "held_bytes",
    "peak_bytes",
    "started_at",
    "session",
    "error",
)
"""The columns of :func:`plain_rows` (and of ``resmagic.top()``'s DataFrame)."""


@dataclass(frozen=True, slots=True)
class TopQuery:
    """What to rank: how, how many, which rows of the store.

    Attributes:
        n: how many cells (None: all that rose, held or ran).
        by: ``"peak"``, ``"held"`` or ``"time"``.
        notebook: only this notebook's rows (None: every notebook's).
        session: only this kernel session's rows (None: every session's).
        device: rank this device only (``"host"``, ``"cuda:0"``, ``"cuda:0.nvml"``).
    """

    n: int | None = 10
    by: By = "peak"
    notebook: str | None = None
    session: str | None = None
    device: str | None = None
    any_notebook: bool = False


def cell_runs(conn: sqlite3.Connection, query: TopQuery) -> list[CellFigures]:
    """Every finished (or died) cell run the query covers, oldest first, one per run id."""
    clauses = ["r.status != 'running'"]
    args: list[Any] = []
    if not query.any_notebook:
        clauses.append("r.notebook IS ?")
        args.append(query.notebook)
    if query.session is not None:
        clauses.append("r.session = ?")
        args.append(query.session)
    rows = conn.execute(
        "SELECT r.run, r.session, r.cell_id, r.cell, r.scope, r.label, r.status, r.started_at,"
        " r.duration_s, r.devices, r.extra, r.error FROM reports r WHERE "
        + " AND ".join(clauses)
        + " ORDER BY r.id",
        args,
    ).fetchall()
    runs: dict[str, CellFigures] = {}
    for run, session, cell_id, *rest in rows:
        runs[run] = fold(runs.get(run), _record(*rest), cell_id=cell_id, session=session)
    return sorted(runs.values(), key=lambda r: r.started_at or 0.0)


def _record(
    cell: int | None,
    scope: str,
    label: str | None,
    status: str,
    started: float,
    duration: float | None,
    devices: str | None,
    extra: str | None,
    error: str | None,
) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(extra) if extra else {}
    record.update(
        cell=cell,
        scope=scope,
        label=label,
        status=status,
        started_at=started,
        duration_s=duration,
        devices=json.loads(devices) if devices else [],
        error=error,
    )
    return record


def top_of(conn: sqlite3.Connection, query: TopQuery) -> list[Ranked]:
    """The query's cells ranked (see :mod:`resmagic.topcells`), highest first.

    A cell a kernel died in is always named: after the ``n`` that used the most come the
    died cells they left out, with what they had (a cell killed before its running row's
    first sample has no figures at all: value 0).
    """
    cells = cells_of(cell_runs(conn, query))
    found = ranked(cells, query.by, query.device, query.n)
    shown = {id(row.run) for row in found}
    died = [(run, count) for run, count in cells if run.died and id(run) not in shown]
    everything = {id(row.run): row for row in ranked(died, query.by, query.device, None)}
    for rank, (run, count) in enumerate(died, len(found) + 1):
        known = everything.get(id(run))
        value, device = (known.value, known.device) if known is not None else (0.0, None)
        found.append(Ranked(rank, run, count, device, value))
    return found


def plain_rows(found: Sequence[Ranked], by: By) -> list[dict[str, Any]]:
    """Each ranked cell as a plain dict of :data:`COLUMNS` (bytes, seconds, epoch seconds).

    ``value`` is what ranked it (bytes for peak and held, seconds for time); the byte
    columns are the ranked device's (the largest-peak device's for time).
    """
    out = []
    for row in found:
        run = row.run
        name = row.device if row.device is not None else _largest(run)
        figures = run.devices.get(name) if name is not None else None
        out.append(
            {
                "rank": row.rank,
                "by": by,
                "device": name,
                "value": row.value,
                "cell": run.cell,
                "cell_id": run.cell_id,
                "label": run.label,
                "runs": row.runs,
                "status": run.status,
                "wall_s": run.wall_s,
                "peak_above_start_bytes": figures.peak_above_start_bytes if figures else None,
                "held_bytes": figures.held_bytes if figures else None,
                "peak_bytes": figures.peak_bytes if figures else None,
                "started_at": run.started_at,
                "session": run.session,
                "error": run.error,
            }
        )
    return out


def _largest(run: CellFigures) -> str | None:
    """The device a time row shows: the one that rose most (first of equals), or None."""
    return max(run.devices, key=lambda k: run.devices[k].peak_above_start_bytes, default=None)
