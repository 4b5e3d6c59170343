"""Plain-text rendering of reports, for terminals, ``--no-panel`` and saved notebooks."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from resmagic.units import format_bytes, format_seconds, format_table

if TYPE_CHECKING:
    from resmagic.report import GpuReport, LogReport, Report

__all__ = ["HistoryTable", "render_report", "report_kinds", "why_line"]


def render_report(report: Report, said: set[str] | None = None) -> str:
    """One line per report; a ``gpu_scope`` without GPU rows adds a second saying why.

    What happened in the container (an OOM kill, a guard with nothing to guard) is said on
    a line of its own under every report it happened in; so are an experiment log's notes
    (records a full disk refused).

    Args:
        report: the report to render.
        said: "why no GPU" lines already shown; a line in it is not repeated (and new ones
            are added), so a terminal session says it once, not under every cell.
    """
    GpuReport, LogReport = report_kinds()  # noqa: N806  # the classes, looked up once
    text = report.summary()
    if isinstance(report, LogReport):  # records a full disk refused (reliability #5)
        return text + "".join(f"\n  {note}" for note in report.notes)
    if not isinstance(report, GpuReport):
        return text
    # The probes' table loads with the first gpu_scope report, not at %load_ext (issue 26).
    from resmagic.probes.devices import host_notes, not_own_gpu

    gpu_rows = any(not not_own_gpu(d.name) for d in report.devices)
    happened, reasons = host_notes(report.notes)
    text += "".join(f"\n  {note}" for note in happened)
    if reasons and not gpu_rows:
        why = why_line(reasons)
        if said is None or why not in said:
            text += "\n" + why
            if said is not None:
                said.add(why)
    return text


@functools.cache
def report_kinds() -> tuple[type[GpuReport], type[LogReport]]:
    """``(GpuReport, LogReport)``, imported with the first report shown (not at ``%load_ext``).

    Issue 26: an import statement per report line was 0.7 µs of every cell; a cached call is
    0.06.
    """
    from resmagic.report import GpuReport, LogReport

    return GpuReport, LogReport


def why_line(notes: Sequence[str]) -> str:
    """The text line that says why a report has no GPU row."""
    return "  no GPU row: " + "; ".join(notes)


_COLUMNS = ("cell", "scope", "label", "status", "time", "memory (before → after, peak)")


def memory_cell(devices: Sequence[Any]) -> str:
    """``host 1.2 GiB → 1.3 GiB, 1.6 GiB; cuda:0 ...`` for device rows (objects or dicts)."""
    rows = [vars_of(d) for d in devices]
    return "; ".join(
        f"{d['name']}{' NVML' if d['source'] == 'NVML' else ''} {format_bytes(d['before_bytes'])}"
        f" → {format_bytes(d['after_bytes'])}, {format_bytes(d['peak_bytes'])}"
        for d in rows
    )


def vars_of(row: Any) -> dict[str, Any]:
    """A device row as a dict, whether a :class:`DeviceReport` or a stored dict."""
    if isinstance(row, dict):
        return row
    return {
        k: getattr(row, k) for k in ("name", "source", "before_bytes", "after_bytes", "peak_bytes")
    }


def _row(report: Report) -> tuple[str, ...]:
    label = getattr(report, "label", None) or getattr(report, "path", None) or ""
    from resmagic.report import GpuReport

    memory = memory_cell(report.devices) if isinstance(report, GpuReport) else ""
    cell = "" if report.cell is None else str(report.cell)
    return (cell, report.scope, label, report.status, format_seconds(report.duration_s), memory)


_PAIR = {"timed", "gpu_scope"}
_MAY_DIFFER = {"scope", "status", "time", "started", "memory"}
"""The columns the two rows of one watched cell may differ in (the first word of a name)."""


def one_row_per_cell(
    rows: Sequence[tuple[str, ...]], columns: Sequence[str]
) -> list[tuple[str, ...]]:
    """Rows with each watched cell's ``timed`` and ``gpu_scope`` rows made one.

    Watch mode measures a cell with both scopes: two reports (``resmagic.history()`` and
    the run store keep both), but a table showed every watched cell twice (UX audit
    2026-12-06 P3-1). Two neighbouring rows of one cell, unlabelled, one of each scope,
    become one: scope ``gpu_scope+timed``, the timing's time, the memory of ``gpu_scope``,
    the first status that is not ``ok``. Any other row stays as it is.
    """
    at = {name: i for i, name in enumerate(columns)}
    cell, scope, label, status, time = (at[k] for k in ("cell", "scope", "label", "status", "time"))
    differ = {i for name, i in at.items() if name.split(" ")[0] in _MAY_DIFFER}
    out: list[tuple[str, ...]] = []
    for row in rows:
        last = out[-1] if out else None
        if (
            last is not None
            and row[cell]
            and {last[scope], row[scope]} == _PAIR
            and not last[label]
            and not row[label]
            and all(last[i] == row[i] for i in range(len(row)) if i not in differ)
        ):
            timed, gpu = (last, row) if last[scope] == "timed" else (row, last)
            merged = list(gpu)
            merged[scope] = "gpu_scope+timed"
            merged[time] = timed[time]
            merged[status] = gpu[status] if gpu[status] != "ok" else timed[status]
            out[-1] = tuple(merged)
        else:
            out.append(tuple(row))
    return out


class HistoryTable:
    """The session's reports as a table: text in terminals, HTML in notebooks."""

    columns: tuple[str, ...] = _COLUMNS
    empty = "no reports yet: run a cell with %%gpu_scope, %%timed, ..."

    def __init__(self, reports: Sequence[Report]) -> None:
        self.rows = one_row_per_cell([_row(r) for r in reports], self.columns)

    def __repr__(self) -> str:
        if not self.rows:
            return self.empty
        return format_table([self.columns, *self.rows])

    def _repr_html_(self) -> str:
        import html  # with the first table shown in a notebook, not at %load_ext (issue 26)

        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
            for row in self.rows
        )
        return f"<table class='resmagic-history'><tr>{head}</tr>{body}</table>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))
