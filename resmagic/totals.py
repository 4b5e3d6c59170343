"""Per-label totals of every ``timed`` run: count, total, mean, max, failures.

A function decorated with ``@timed("step")`` and called 10,000 times makes 10,000 reports;
these totals are what a user reads of them. With ``keep="totals"`` the runs make no reports
at all (no history, no log records) and only count here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from resmagic.report import TimingReport
from resmagic.units import format_seconds, format_table

__all__ = ["LabelTotals", "Timings", "add", "clear_timings", "count", "timings"]


@dataclass(frozen=True, slots=True)
class LabelTotals:
    """What the runs of one label added up to, in seconds."""

    label: str
    count: int
    total_s: float
    max_s: float
    cpu_s: float
    failed: int

    @property
    def mean_s(self) -> float:
        """Mean wall seconds per run."""
        return self.total_s / self.count if self.count else 0.0


_lock = threading.Lock()  # the thread list and clearing; a run counts without it
_local = threading.local()
# Each thread counts into rows of its own (no lock per run: 0.37 -> 0.24 us, issue 26);
# timings() adds them up. A thread's rows outlive it: those of ended threads are folded into
# _ended when a new thread starts counting, so a pool of short threads keeps one dict.
_threads: list[tuple[threading.Thread, dict[str, list[float]]]] = []
_ended: dict[str, list[float]] = {}  # label -> [count, total, max, cpu, failed]


def add(report: TimingReport) -> None:
    """Count one run of ``report.label`` (unlabelled runs count under ``"(no label)"``)."""
    count(report.label, report.wall_s, report.cpu_s, report.status != "ok")


def count(label: str | None, wall_s: float, cpu_s: float, failed: bool) -> None:
    """Count one run of ``label`` (None: ``"(no label)"``) that took ``wall_s``/``cpu_s``."""
    try:
        rows: dict[str, list[float]] = _local.rows
    except AttributeError:
        rows = _join()
    row = rows.get(label or "(no label)")
    if row is None:
        row = rows[label or "(no label)"] = [0, 0.0, 0.0, 0.0, 0]
    row[1] += wall_s
    if wall_s > row[2]:
        row[2] = wall_s
    row[3] += cpu_s
    row[4] += failed
    row[0] += 1


def _join() -> dict[str, list[float]]:
    """This thread's rows, new; the rows of threads that ended are folded away first."""
    rows: dict[str, list[float]] = {}
    with _lock:
        for thread, theirs in [t for t in _threads if not t[0].is_alive()]:
            _fold(_ended, theirs)
            _threads.remove((thread, theirs))
        _threads.append((threading.current_thread(), rows))
    _local.rows = rows
    return rows


def _fold(into: dict[str, list[float]], rows: dict[str, list[float]]) -> None:
    for label, row in list(rows.items()):
        mine = into.setdefault(label, [0, 0.0, 0.0, 0.0, 0])
        mine[0] += row[0]
        mine[1] += row[1]
        mine[2] = max(mine[2], row[2])
        mine[3] += row[3]
        mine[4] += row[4]


def clear_timings() -> None:
    """Forget every label's totals."""
    with _lock:
        _ended.clear()
        for _, rows in _threads:
            rows.clear()


def timings() -> Timings:
    """Every label's totals so far, the largest total first (a table in notebooks)."""
    summed: dict[str, list[float]] = {}
    with _lock:
        _fold(summed, _ended)
        for _, rows in _threads:
            _fold(summed, rows)
    rows_out = [
        LabelTotals(label, int(r[0]), r[1], r[2], r[3], int(r[4]))
        for label, r in summed.items()
        if r[0]  # a row another thread made and has not counted in yet
    ]
    return Timings(sorted(rows_out, key=lambda row: -row.total_s))


_COLUMNS = ("label", "count", "total", "mean", "max", "cpu", "failed")


class Timings:
    """Labels' totals, largest first: iterate, index by label, or print as a table."""

    def __init__(self, rows: list[LabelTotals]) -> None:
        self.rows = rows

    def __iter__(self) -> Iterator[LabelTotals]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, label: str) -> LabelTotals:
        for row in self.rows:
            if row.label == label:
                return row
        msg = f"no timed runs labelled {label!r}; labels: {[r.label for r in self.rows]}"
        raise KeyError(msg)

    def table(self) -> list[tuple[str, ...]]:
        """The header and one row of text per label."""
        body = [
            (
                r.label,
                str(r.count),
                format_seconds(r.total_s),
                format_seconds(r.mean_s),
                format_seconds(r.max_s),
                format_seconds(r.cpu_s),
                str(r.failed),
            )
            for r in self.rows
        ]
        return [_COLUMNS, *body]

    def __repr__(self) -> str:
        if not self.rows:
            return "no timed runs yet"
        return format_table(self.table())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))
