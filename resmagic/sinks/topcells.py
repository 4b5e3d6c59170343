"""Which cells used the most: each cell run's figures, and the cells ranked three ways.

Pure functions on reports, shared by the MLflow sink (its ``resmagic/top_cells.json``
artifact at the end of a session) and meant for ``%resmagic top`` (issue 27 item 1), which
builds the same :class:`CellFigures` from the run store instead of from what a sink saw.

A cell run's figures fold its reports (a watched cell has a ``timed`` and a ``gpu_scope``
report): the worst status, the first label, the longest time, and the device rows of its
last ``gpu_scope`` report (the outermost scope closes last). The ranking:

- **peak**: per device, the peak above the memory in use when the cell started;
- **held**: per device, the memory in use after the cell minus before;
- **time**: the wall seconds.

A memory ranking leaves out the cells whose figure is not above zero (a cell that freed
memory holds none). Devices are ``host`` and the GPUs (``cuda:0``, ``cuda:0.nvml``), never
``workers`` or ``container`` (another process's memory, a shared counter: issue 27 item 2).
A cell run several times (the same Jupyter cell id) is ranked by its last run, with how
many runs.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from resmagic.redact import redact
from resmagic.report import GpuReport, Report, Status, TimingReport
from resmagic.sinks.metrics import device_key, mib, steps_text

__all__ = [
    "TABLE",
    "TOP",
    "CellFigures",
    "DeviceFigures",
    "fold",
    "table_of",
    "top_cells",
]

TOP = 10  # rows per ranking
ABOUT = {
    "peak": "MiB above what was in use when the cell started, per device (cells that rose)",
    "held": "MiB in use after the cell minus before, per device (cells that left some)",
    "time": "wall seconds",
    "runs": "a cell run several times (same cell id) shows its last run",
    "steps": "where the cell's points are on the run's charts (series step, or first-last)",
}
_OTHERS = frozenset({"workers", "container"})  # not this process's own memory


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
        label: the first label among its reports (``%%timed train``).
        wall_s: the longest of its reports' wall seconds.
        devices: ``"host"``, ``"cuda:0"`` … → its figures, from its last ``gpu_scope``.
        steps: the series its reports were charted in → the first and last step there (a
            loop of blocks in one cell has many; see the MLflow sink).
        reports: how many reports it had.
    """

    cell: int | None
    cell_id: str | None
    label: str | None = None
    status: Status = "ok"
    error: str | None = None
    wall_s: float = 0.0
    devices: Mapping[str, DeviceFigures] = field(default_factory=dict)
    steps: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    reports: int = 0


def fold(
    run: CellFigures | None,
    report: Report,
    *,
    cell_id: str | None = None,
    step: tuple[str, int] | None = None,
) -> CellFigures:
    """``run`` with one more of its reports counted in (a new run when ``run`` is None)."""
    run = run if run is not None else CellFigures(cell=report.cell, cell_id=cell_id)
    bad = run.status == "ok" and report.status != "ok"  # the first failure says why
    label = getattr(report, "label", None)
    seconds = report.wall_s if isinstance(report, TimingReport) else report.duration_s
    return dataclasses.replace(
        run,
        cell_id=run.cell_id or cell_id,
        label=run.label or label or None,
        status=report.status if bad else run.status,
        error=report.error if bad else run.error,
        wall_s=max(run.wall_s, seconds),
        devices=_devices(report) if isinstance(report, GpuReport) else run.devices,
        steps=_with_step(run.steps, step) if step is not None else run.steps,
        reports=run.reports + 1,
    )


def _with_step(
    steps: Mapping[str, tuple[int, int]], step: tuple[str, int]
) -> dict[str, tuple[int, int]]:
    series, n = step
    first = steps[series][0] if series in steps else n
    return {**steps, series: (first, n)}


def _devices(report: GpuReport) -> dict[str, DeviceFigures]:
    return {
        device_key(row): DeviceFigures(
            peak_above_start_bytes=row.peak_bytes - row.before_bytes,
            held_bytes=row.after_bytes - row.before_bytes,
            peak_bytes=row.peak_bytes,
        )
        for row in report.devices
        if row.name not in _OTHERS
    }


def top_cells(runs: Iterable[CellFigures], n: int = TOP) -> dict[str, Any]:
    """The ``n`` cells that used the most, three ways, as a JSON-ready dict (see the module).

    ``{"about": …, "cells": 14, "runs": 20, "peak": {"host": [row, …]}, "held": {…},
    "time": [row, …]}``, each row ``{"rank", "cell", "cell_id", "label", "runs", "status",
    "error", "wall_s", "devices": {"host": {"peak_above_start_mib", "held_mib", "peak_mib"}},
    "steps"}``.
    """
    cells = _last_runs(runs)
    names = sorted({name for run, _ in cells for name in run.devices})
    return {
        "about": ABOUT,
        "cells": len(cells),
        "runs": sum(count for _, count in cells),
        "peak": {name: _ranked(cells, functools.partial(_peak, name), n) for name in names},
        "held": {name: _ranked(cells, functools.partial(_held, name), n) for name in names},
        "time": _ranked(cells, _time, n),
    }


def _peak(name: str, run: CellFigures) -> int | None:
    figures = run.devices.get(name)
    rise = figures.peak_above_start_bytes if figures is not None else 0
    return rise if rise > 0 else None


def _held(name: str, run: CellFigures) -> int | None:
    figures = run.devices.get(name)
    return figures.held_bytes if figures is not None and figures.held_bytes > 0 else None


def _time(run: CellFigures) -> float:
    return run.wall_s


def _ranked(
    cells: list[tuple[CellFigures, int]], score: Callable[[CellFigures], float | None], n: int
) -> list[dict[str, Any]]:
    """The ``n`` best-scoring cells, highest first (ties: the first to run); None: left out."""
    scored = [(s, run, count) for run, count in cells if (s := score(run)) is not None]
    scored.sort(key=lambda item: item[0], reverse=True)  # stable: ties keep their order
    return [_row(rank, run, count) for rank, (_, run, count) in enumerate(scored[:n], 1)]


def _last_runs(runs: Iterable[CellFigures]) -> list[tuple[CellFigures, int]]:
    """Each cell's last run and how many runs it had, in the order the cells first ran.

    A cell is its Jupyter id; without one (a terminal) each execution is a cell of its own,
    and outside IPython a label is (a script's ``timed("step")`` in a loop).
    """
    found: dict[object, tuple[CellFigures, int]] = {}
    for i, run in enumerate(runs):
        key: object = (
            ("id", run.cell_id)
            if run.cell_id is not None
            else ("cell", run.cell)
            if run.cell is not None
            else ("label", run.label)
            if run.label
            else ("run", i)
        )
        count = found[key][1] + 1 if key in found else 1
        found[key] = (run, count)
    return list(found.values())


def _row(rank: int, run: CellFigures, runs: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "cell": run.cell,
        "cell_id": run.cell_id,
        "label": run.label,
        "runs": runs,
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
        for name, ranked in ranking[how].items()
        for row in ranked
    ]
    return rows + [_flat("time", None, row) for row in ranking["time"]]


def _flat(how: str, device: str | None, row: dict[str, Any]) -> dict[str, Any]:
    figures = row["devices"].get(device, {}) if device is not None else {}
    flat = {**row, "by": how, "device": device, **figures}
    return {column: flat.get(column) for column in TABLE}
