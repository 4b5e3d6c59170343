"""The last runs "last time" needs, in memory: no cell ever waits for the store's thread.

Keyed by cell id (same notebook) and by code hash. This session's own runs go in as they end;
the notebook's earlier runs are read once, on the writer thread, when the store opens. A
cell neither covers falls back to a lookup the writer thread answers while the cell runs.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable

from resmagic.report import GpuReport, Report
from resmagic.store.query import LastRun, _last

__all__ = ["Recent", "last_of"]

_WARM_ROWS = 5000  # the notebook's newest reports read at load (its cells' last runs)


def last_of(report: Report) -> LastRun:
    """``report`` as a last run: its duration, its largest GPU peak (else the host's), status.

    Never a ``workers`` or ``container`` row (:func:`~resmagic.store.query.last_device`).
    """
    peak = device = None
    if isinstance(report, GpuReport) and report.devices:
        # last_device's rule on the report's rows as they are: this runs as each cell ends
        gpus = [d for d in report.devices if d.name.startswith("cuda:")]
        own = gpus or [d for d in report.devices if d.name == "host"]
        pick = max(own, key=lambda d: d.peak_bytes, default=None)
        if pick is not None:
            # device_key's name; probes' names need none of its cleaning (a µs per cell)
            peak = pick.peak_bytes
            device = f"{pick.name}.nvml" if pick.source == "NVML" else pick.name
    return LastRun(report.duration_s, peak, device, report.status, report.started_at)


class Recent:
    """Scope → last run, per cell id and per code hash; safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Two dicts keyed by the string itself (issue 26 C1: no key tuple made per cell).
        self._cells: dict[str, dict[str, LastRun]] = {}
        self._codes: dict[str, dict[str, LastRun]] = {}

    def get(self, cell_id: str | None, code_sha: str | None) -> dict[str, LastRun] | None:
        """What the cell (else its code) did last time, or None when not known here."""
        with self._lock:
            found = self._cells.get(cell_id) if cell_id is not None else None
            if found is None and code_sha is not None:
                found = self._codes.get(code_sha)
            return dict(found) if found else None

    def remember(
        self, cell_id: str | None, code_sha: str | None, reports: Iterable[Report]
    ) -> None:
        """This session's run of a cell: what the next run of it reads as last time."""
        runs = {r.scope: last_of(r) for r in reports}
        if not runs:
            return
        with self._lock:
            if cell_id is not None:
                self._cells.setdefault(cell_id, {}).update(runs)
            if code_sha is not None:
                self._codes.setdefault(code_sha, {}).update(runs)

    def warm(self, conn: sqlite3.Connection, notebook: str | None) -> None:
        """Read the notebook's earlier runs (writer thread); this session's runs stay newer."""
        if notebook is None:
            return
        rows = conn.execute(
            "SELECT cell_id, code_sha, scope, duration_s, devices, status, started_at"
            " FROM reports WHERE notebook IS ? AND status != 'running' ORDER BY id DESC LIMIT ?",
            [notebook, _WARM_ROWS],
        ).fetchall()
        with self._lock:
            cells, codes = self._cells, self._codes
            for cell_id, code, scope, duration, devices, status, started in rows:
                last = _last(duration, devices, status, started)
                if cell_id is not None:
                    cells.setdefault(cell_id, {}).setdefault(scope, last)
                if code is not None:
                    codes.setdefault(code, {}).setdefault(scope, last)
