"""Which cells used the most: cell runs (:mod:`resmagic.cellfigures`) ranked.

One set of rules for ``%resmagic top`` and ``resmagic.top()`` (which fold the run store's
rows, across restarts) and for the MLflow sink's ``resmagic/top_cells.json`` (which folds
the reports it sent): both call :func:`~resmagic.cellfigures.fold`,
:func:`~resmagic.cellfigures.cells_of` and :func:`ranked`, so a
session ranks the same in the notebook and in MLflow. Plain values in and out: a report
(anything with ``to_dict()``) or a stored row (a dict of the same keys).

The rankings:

- **peak**: the peak above the memory in use when the cell started;
- **held**: the memory in use after the cell minus before;
- **time**: the wall seconds.

A memory ranking is per device: ``host``, ``cuda:0`` (torch's allocator), ``cuda:0.nvml``,
and any other row a report carries (a ``rank 1`` row of a launched job ranks like a
device), never ``workers`` or ``container`` (:mod:`resmagic.cellfigures` leaves them
out). Asked for no device, a cell ranks by its largest figure over its devices, and says
which. Cells whose figure is not above zero are left out
(a cell that freed memory holds none). A cell is its Jupyter cell id; without one (a
terminal, nbclient) each execution is a cell of its own; outside IPython, a label is. A
cell run several times ranks by its last run, with how many runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from resmagic.cellfigures import CellFigures, DeviceFigures, cells_of, mib, steps_text
from resmagic.redact import redact

__all__ = [
    "BY",
    "TABLE",
    "TOP",
    "Ranked",
    "ranked",
    "table_of",
    "top_cells",
]

By = Literal["peak", "held", "time"]
BY: tuple[By, ...] = ("peak", "held", "time")
"""What cells can be ranked by."""
TOP = 10  # rows per ranking
ABOUT = {
    "peak": "MiB above what was in use when the cell started, per device (cells that rose)",
    "held": "MiB in use after the cell minus before, per device (cells that left some)",
    "time": "wall seconds",
    "runs": "a cell run several times (same cell id) shows its last run",
    "steps": "where the cell's points are on the run's charts (series step, or first-last)",
}


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
