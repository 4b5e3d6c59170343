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

__all__ = ["LabelTotals", "Timings", "add", "clear_timings", "timings"]


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


_lock = threading.Lock()
_totals: dict[str, list[float]] = {}  # label -> [count, total, max, cpu, failed]


def add(report: TimingReport) -> None:
    """Count one run of ``report.label`` (unlabelled runs count under ``"(no label)"``)."""
    label = report.label or "(no label)"
    with _lock:
        row = _totals.get(label)
        if row is None:
            row = _totals[label] = [0, 0.0, 0.0, 0.0, 0]
        row[0] += 1
        row[1] += report.wall_s
        row[2] = max(row[2], report.wall_s)
        row[3] += report.cpu_s
        row[4] += report.status != "ok"


def clear_timings() -> None:
    """Forget every label's totals."""
    with _lock:
        _totals.clear()


def timings() -> Timings:
    """Every label's totals so far, the largest total first (a table in notebooks)."""
    with _lock:
        rows = [
            LabelTotals(label, int(r[0]), r[1], r[2], r[3], int(r[4]))
            for label, r in _totals.items()
        ]
    return Timings(sorted(rows, key=lambda row: -row.total_s))


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
