"""Which cells used the most: a cell run's figures from its reports, and the cells ranked.

One set of rules for ``%resmagic top`` and ``resmagic.top()`` (which fold the run store's
rows, across restarts) and for the MLflow sink's ``resmagic/top_cells.json`` (which folds
the reports it sent): both call :func:`fold`, :func:`cells_of` and :func:`ranked`, so a
session ranks the same in the notebook and in MLflow. Plain values in and out: a report
(anything with ``to_dict()``) or a stored row (a dict of the same keys).

A cell run folds its reports (a watched cell has a ``timed`` and a ``gpu_scope`` report):
the first status that is not ``ok`` and its error, the first label, the longest time (a
timing's wall seconds, else a report's duration), and the device rows of its outermost
report: a ``died`` row (the cell until its kernel died), else the last report with device
rows (the outermost scope closes last). The rankings:

- **peak**: the peak above the memory in use when the cell started;
- **held**: the memory in use after the cell minus before;
- **time**: the wall seconds.

A memory ranking is per device: ``host``, ``cuda:0`` (torch's allocator), ``cuda:0.nvml``,
and any other row a report carries (a ``rank 1`` row of a launched job ranks like a
device), never ``workers`` or ``container``: other processes' memory, or a counter the
whole container shares (issue 27 item 2). Asked for no device, a cell ranks by its largest
figure over its devices, and says which. Cells whose figure is not above zero are left out
(a cell that freed memory holds none). A cell is its Jupyter cell id; without one (a
terminal, nbclient) each execution is a cell of its own; outside IPython, a label is. A
cell run several times ranks by its last run, with how many runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from resmagic.redact import redact

__all__ = [
    "BY",
    "OTHERS",
    "TABLE",
    "TOP",
    "CellFigures",
    "DeviceFigures",
    "Ranked",
    "cells_of",
    "device_key",
    "fold",
    "mib",
    "ranked",
    "steps_text",
    "table_of",
    "top_cells",
]

By = Literal["peak", "held", "time"]
BY: tuple[By, ...] = ("peak", "held", "time")
"""What cells can be ranked by."""
TOP = 10  # rows per ranking
MiB = 1 << 20
OTHERS = frozenset({"workers", "container"})
"""Device rows that never rank: not this process's own memory."""
ABOUT = {
    "peak": "MiB above what was in use when the cell started, per device (cells that rose)",
    "held": "MiB in use after the cell minus before, per device (cells that left some)",
    "time": "wall seconds",
    "runs": "a cell run several times (same cell id) shows its last run",
    "steps": "where the cell's points are on the run's charts (series step, or first-last)",
}


class _Report(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def mib(n: float) -> float:
    """Bytes as MiB, rounded to the KiB (3 decimals): what a chart's axis can read."""
    return round(n / MiB, 3)


def device_key(row: Any) -> str:
    """``"host"``, ``"cuda:0"`` (torch's allocator) or ``"cuda:0.nvml"``: a device row's name.

    ``row`` is a device row object or its dict. Names keep to MLflow's characters: anything
    but letters, digits and ``_ - . : space`` becomes ``_``.
    """
    name, source = (
        (row["name"], row["source"]) if isinstance(row, Mapping) else (row.name, row.source)
    )
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "_-.: ") else "_" for c in str(name))
    return f"{clean}.nvml" if source == "NVML" else clean


def steps_text(steps: Mapping[str, tuple[int, int]]) -> str:
    """``"gpu_scope 4, timed.cell 4"``: each series and its step; a loop's ``"timed.step 0-99"``."""
    return ", ".join(
        f"{series} {first}" if first == last else f"{series} {first}-{last}"
        for series, (first, last) in sorted(steps.items())
    )


@dataclass(frozen=True, slots=True)
class DeviceFigures:
    """One device over one cell run, in bytes."""

    peak_above_start_bytes: int
    held_bytes: int
    peak_bytes: int


@dataclass(frozen=True, slots=True)
class CellFigures:
    """One run of one cell, as the rankings read it.

    Attributes:
        cell: its execution count (``In [12]``), None outside IPython.
        cell_id: the notebook's id of the cell (Jupyter sends it), else None.
        session: the kernel session it ran in (the run store's), None in a sink.
        label: the first label among its reports (``%%timed train``).
        status: the first status that is not ``ok`` (``error``, ``interrupted``, ``died``).
        wall_s: the longest of its reports' wall seconds.
        devices: ``"host"``, ``"cuda:0"`` … → its figures, from its outermost report.
        steps: the series its reports were charted in → the first and last step there (a
            loop of blocks in one cell has many; see the MLflow sink).
        reports: how many reports it had.
        started_at: when its first report started (seconds since the epoch).
    """

    cell: int | None
    cell_id: str | None
    session: str | None = None
    label: str | None = None
    status: str = "ok"
    error: str | None = None
    wall_s: float = 0.0
    devices: Mapping[str, DeviceFigures] = field(default_factory=dict)
    steps: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    reports: int = 0
    started_at: float | None = None

    @property
    def died(self) -> bool:
        """True when its kernel died while it ran."""
        return self.status == "died"


def fold(
    run: CellFigures | None,
    report: _Report | Mapping[str, Any],
    *,
    cell_id: str | None = None,
    session: str | None = None,
    step: tuple[str, int] | None = None,
) -> CellFigures:
    """``run`` with one more of its reports counted in (a new run when ``run`` is None).

    Args:
        run: the cell run so far.
        report: a report, or its ``to_dict()`` (a stored row: ``scope``, ``status``,
            ``duration_s``, ``devices`` as dicts, and ``wall_s``/``label`` if it has them).
        cell_id: the cell's Jupyter id, if known.
        session: the session it ran in, if known.
        step: the series the report was charted in and its step there (a sink's).
    """
    record = report if isinstance(report, Mapping) else report.to_dict()
    if run is None:
        run = CellFigures(cell=record.get("cell"), cell_id=cell_id, session=session)
    status = str(record.get("status") or "ok")
    bad = run.status == "ok" and status != "ok"  # the first failure says why
    wall = record.get("wall_s")
    seconds = float(wall if wall is not None else record.get("duration_s") or 0.0)
    started = record.get("started_at")
    return dataclasses.replace(
        run,
        cell_id=run.cell_id or cell_id,
        label=run.label or record.get("label") or None,
        status=status if bad else run.status,
        error=record.get("error") if bad else run.error,
        wall_s=max(run.wall_s, seconds),
        devices=_outermost(run, record, status),
        steps=_with_step(run.steps, step) if step is not None else run.steps,
        reports=run.reports + 1,
        started_at=run.started_at if run.started_at is not None else started,
    )


def _outermost(
    run: CellFigures, record: Mapping[str, Any], status: str
) -> Mapping[str, DeviceFigures]:
    rows = record.get("devices") or ()
    if not rows or (run.died and status != "died"):
        return run.devices  # a died row covers the cell until the kernel died
    return {
        device_key(row): DeviceFigures(
            peak_above_start_bytes=row["peak_bytes"] - row["before_bytes"],
            held_bytes=row["after_bytes"] - row["before_bytes"],
            peak_bytes=row["peak_bytes"],
        )
        for row in (_as_dict(r) for r in rows)
        if row["name"] not in OTHERS
    }


def _as_dict(row: Any) -> Mapping[str, Any]:
    if isinstance(row, Mapping):
        return row
    keys = ("name", "source", "before_bytes", "peak_bytes", "after_bytes")
    return {key: getattr(row, key) for key in keys}


def _with_step(
    steps: Mapping[str, tuple[int, int]], step: tuple[str, int]
) -> dict[str, tuple[int, int]]:
    series, n = step
    first = steps[series][0] if series in steps else n
    return {**steps, series: (first, n)}


def cells_of(runs: Iterable[CellFigures]) -> list[tuple[CellFigures, int]]:
    """Each cell's last run and how many runs it had, in the order the cells first ran.

    A cell is its Jupyter id; without one each execution (a session's ``In [n]``) is a cell
    of its own (a number names no cell across restarts), and outside IPython a label is (a
    script's ``timed("step")`` in a loop).
    """
    found: dict[object, tuple[CellFigures, int]] = {}
    for i, run in enumerate(runs):
        key: object = (
            ("id", run.cell_id)
            if run.cell_id is not None
            else ("cell", run.session, run.cell)
            if run.cell is not None
            else ("label", run.label)
            if run.label
            else ("run", i)
        )
        count = found[key][1] + 1 if key in found else 1
        found[key] = (run, count)
    return list(found.values())


@dataclass(frozen=True, slots=True)
class Ranked:
    """One row of a ranking: the cell's last run, how many runs, and what ranked it.

    Attributes:
        rank: 1 for the cell that used the most.
        run: the cell's last run.
        runs: how many runs the cell had.
        device: the device a memory ranking ranked it by; None for time.
        value: what ranked it: bytes (peak, held) or seconds (time).
    """

    rank: int
    run: CellFigures
    runs: int
    device: str | None
    value: float


def ranked(
    cells: Sequence[tuple[CellFigures, int]],
    by: By = "peak",
    device: str | None = None,
    n: int | None = TOP,
) -> list[Ranked]:
    """The ``n`` cells that used the most by ``by`` (all when None), highest first.

    Args:
        cells: :func:`cells_of`'s cells.
        by: ``"peak"`` (above the start), ``"held"`` (after minus before) or ``"time"``.
        device: rank this device only (``"host"``, ``"cuda:0"``, ``"cuda:0.nvml"``); None:
            each cell by its largest figure over its devices.
        n: how many rows.

    Ties keep the order the cells first ran.
    """
    score = _time if by == "time" else _memory(by, device)
    scored = [(found, run, count) for run, count in cells if (found := score(run)) is not None]
    scored.sort(key=lambda item: item[0][0], reverse=True)  # stable: ties keep their order
    chosen = scored if n is None else scored[:n]
    return [
        Ranked(rank, run, count, name, value)
        for rank, ((value, name), run, count) in enumerate(chosen, 1)
    ]


Score = Callable[[CellFigures], "tuple[float, str | None] | None"]


def _time(run: CellFigures) -> tuple[float, str | None]:
    return run.wall_s, None


def _memory(by: By, device: str | None) -> Score:
    def figure(d: DeviceFigures) -> int:
        return d.peak_above_start_bytes if by == "peak" else d.held_bytes

    def score(run: CellFigures) -> tuple[float, str | None] | None:
        names = [device] if device is not None else list(run.devices)
        found = [(figure(run.devices[name]), name) for name in names if name in run.devices]
        best = max(found, key=lambda item: item[0], default=None)  # first of equals
        return (float(best[0]), best[1]) if best is not None and best[0] > 0 else None

    return score


def top_cells(runs: Iterable[CellFigures], n: int = TOP) -> dict[str, Any]:
    """The ``n`` cells that used the most, three ways, as a JSON-ready dict (see the module).

    ``{"about": …, "cells": 14, "runs": 20, "peak": {"host": [row, …]}, "held": {…},
    "time": [row, …]}``, each row ``{"rank", "cell", "cell_id", "label", "runs", "status",
    "error", "wall_s", "devices": {"host": {"peak_above_start_mib", "held_mib", "peak_mib"}},
    "steps"}``: the MLflow sink's ``resmagic/top_cells.json``.
    """
    cells = cells_of(runs)
    names = sorted({name for run, _ in cells for name in run.devices})
    return {
        "about": ABOUT,
        "cells": len(cells),
        "runs": sum(count for _, count in cells),
        "peak": {name: [_row(r) for r in ranked(cells, "peak", name, n)] for name in names},
        "held": {name: [_row(r) for r in ranked(cells, "held", name, n)] for name in names},
        "time": [_row(r) for r in ranked(cells, "time", None, n)],
    }


def _row(found: Ranked) -> dict[str, Any]:
    run = found.run
    return {
        "rank": found.rank,
        "cell": run.cell,
        "cell_id": run.cell_id,
        "label": run.label,
        "runs": found.runs,
        "status": run.status,
        "error": redact(run.error) if run.error else None,
        "wall_s": round(run.wall_s, 6),
        "devices": {
            name: {
                "peak_above_start_mib": mib(d.peak_above_start_bytes),
                "held_mib": mib(d.held_bytes),
                "peak_mib": mib(d.peak_bytes),
            }
            for name, d in run.devices.items()
        },
        "steps": steps_text(run.steps),
    }


TABLE = (
    "by",
    "rank",
    "device",
    "cell",
    "label",
    "wall_s",
    "peak_above_start_mib",
    "held_mib",
    "peak_mib",
    "runs",
    "status",
    "error",
    "cell_id",
    "steps",
)
"""The columns of :func:`table_of`'s rows: what ranks it and by how much first."""


def table_of(ranking: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`top_cells`'s rankings as one flat table: a row per ranking, device and rank.

    ``by`` is ``peak``, ``held`` or ``time``; ``device`` the device a memory ranking is
    about, and its figures fill the MiB columns (None in the ``time`` rows); ``steps`` reads
    ``"gpu_scope 4, timed.cell 4"``.
    """
    rows = [
        _flat(how, name, row)
        for how in ("peak", "held")
        for name, ranked_rows in ranking[how].items()
        for row in ranked_rows
    ]
    return rows + [_flat("time", None, row) for row in ranking["time"]]


def _flat(how: str, device: str | None, row: dict[str, Any]) -> dict[str, Any]:
    figures = row["devices"].get(device, {}) if device is not None else {}
    flat = {**row, "by": how, "device": device, **figures}
    return {column: flat.get(column) for column in TABLE}
