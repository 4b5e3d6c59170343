"""A cell run's figures, folded from its reports or its stored rows: what the rankings read.

:func:`fold` counts one report (or a stored row of the same keys) into a cell run:
the first status that is not ``ok`` and its error, the first label, the longest time (a
timing's wall seconds, else a report's duration), and the device rows of its outermost
report: a ``died`` row (the cell until its kernel died), else the last report with device
rows (the outermost scope closes last). ``workers`` and ``container`` rows are left out:
other processes' memory, or a counter the whole container shares (issue 27 item 2).
:func:`cells_of` groups runs into cells. :mod:`resmagic.topcells` ranks them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "OTHERS",
    "CellFigures",
    "DeviceFigures",
    "MiB",
    "cells_of",
    "device_key",
    "fold",
    "mib",
    "steps_text",
]

MiB = 1 << 20
OTHERS = frozenset({"workers", "container"})
"""Device rows that never rank: not this process's own memory."""


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
