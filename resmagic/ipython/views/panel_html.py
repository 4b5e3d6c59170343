"""The panel's HTML: one row per device with a bar, before, live or after, peak, delta, trend.

Pure functions over plain values, no widgets: the live widget and the static summary a
saved notebook keeps are the same markup, so the panel looks the same before and after a
kernel restart. One line of HTML with inline styles (JupyterLab, nbconvert and GitHub keep
inline styles; a ``<style>`` block is stripped by some of them) and stable ``rm-*`` class
names and ``data-*`` byte counts for tests and the browser.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from resmagic.ipython.views.held import NOT_VARIABLES, held_by_variables
from resmagic.probes.devices import host_notes, not_own_gpu
from resmagic.probes.reading import DeviceMemory
from resmagic.report import DeviceReport, GpuReport
from resmagic.units import format_bytes, format_delta, format_seconds

__all__ = [
    "MAX_POINTS",
    "PanelRow",
    "PanelView",
    "left_allocated",
    "render",
    "rows_from",
    "scale_of",
]

MAX_POINTS = 240
"""Most points a row's trend keeps; older ones are merged pairwise, keeping maxima."""

_FONT = "font-family:var(--jp-code-font-family,monospace);font-size:12px;line-height:1.6"
_MUTED = "color:var(--jp-ui-font-color2,#757575)"
_BAR_BG = "var(--jp-layout-color3,#e0e0e0)"
_OK = "#43a047"
_LEFT = "#fb8c00"
_ERROR = "#e53935"
# JupyterLab's brand colour is a darker blue in the light theme and a lighter one in the
# dark theme: the trend and the peak tick stay readable in both (a fixed purple did not).
_PEAK = "var(--jp-brand-color1,#1976d2)"
_BEFORE = "var(--jp-layout-color4,#9e9e9e)"
# Inline, so JupyterLab's rendered-HTML table styles (stripes, right alignment) stay out.
_CELL = "padding:0 8px 0 0;white-space:nowrap;text-align:left;border:none;background:none"


def left_allocated(before: int, after: int, total: int | None) -> bool:
    """True when the block left memory allocated: more than 1 MiB and 0.1 % of the device."""
    grown = after - before
    return grown > max(1 << 20, (total or 0) // 1000)


@dataclass
class PanelRow:
    """What the panel knows of one device (and source), in bytes; None where not yet known."""

    name: str
    source: str
    total: int | None
    before: int
    now: int
    peak: int
    peak_exact: bool
    after: int | None = None
    series: list[int] = field(default_factory=list)
    named: int | None = None
    """Bytes on this device the cell's own variables hold after it
    (:mod:`resmagic.ipython.views.held`); None where nobody looked."""

    @classmethod
    def opened(cls, reading: DeviceMemory) -> PanelRow:
        """A row as the scope opened: nothing but the before value yet."""
        used = reading.used_bytes
        return cls(
            reading.name,
            reading.source,
            reading.total_bytes,
            used,
            used,
            used,
            reading.peak_bytes is not None,
            series=[used],
        )

    def observe(self, reading: DeviceMemory) -> None:
        """Fold one live reading in: now, the running peak (a counter's where there is one)."""
        self.now = reading.used_bytes
        self.total = reading.total_bytes or self.total
        self.peak = max(self.peak, reading.used_bytes, reading.peak_bytes or 0)
        self.series.append(reading.used_bytes)
        if len(self.series) > MAX_POINTS:
            pairs = zip(self.series[0::2], self.series[1::2], strict=False)
            self.series = [max(a, b) for a, b in pairs]

    def close(self, final: DeviceReport) -> None:
        """Take the report's exact values: the panel ends agreeing with ``history()[-1]``."""
        self.before, self.peak, self.after = final.before_bytes, final.peak_bytes, final.after_bytes
        self.now, self.peak_exact = final.after_bytes, final.peak_exact
        self.total = final.total_bytes
        self.series.append(final.after_bytes)


@dataclass
class PanelView:
    """Everything one panel shows: rows, the state of the cell and why a GPU is missing."""

    magic: str
    rows: list[PanelRow]
    elapsed_s: float = 0.0
    status: str = "running"
    error: str | None = None
    notes: Sequence[str] = ()
    """Why a GPU source is missing; shown only while the panel has no GPU row."""
    expected_s: float | None = None
    """How long the cell took last time (the run store), for the progress bar; None: unknown."""
    timing: str = ""
    """``wall 1.12 s, cpu 1.72 s``: a watched cell's timing, in the head (not a line of its own)."""

    def close(self, report: GpuReport) -> None:
        """End the view with the report: exact before/peak/after, status and duration."""
        by_key = {(r.name, r.source): r for r in self.rows}
        rows = []
        for final in report.devices:
            row = by_key.get((final.name, final.source))
            if row is None:
                row = PanelRow(final.name, final.source, final.total_bytes, 0, 0, 0, False)
            row.close(final)
            rows.append(row)
        self.rows = rows
        self.status, self.error = report.status, report.error
        self.elapsed_s, self.notes = report.duration_s, report.notes


_TITLES = {
    "before": "in use when the cell started",
    "live": "in use now",
    "after": "in use when the cell ended",
    "peak": "the most in use during the cell, and how far above its start",
    "Δ": "after minus before: what the cell left allocated (orange: your variables hold most"
    " of it; %resmagic who names them)",
    "trend": "samples during the cell, lowest to highest",
}


def render(view: PanelView, extra: str = "") -> str:
    """The panel as one line of HTML; ``extra`` markup goes under its table."""
    running = view.status == "running"
    colour = {"running": _PEAK, "ok": _OK}.get(view.status, _ERROR)
    state = "running" if running else view.status
    elapsed = format_seconds(view.elapsed_s)
    error = f" <span class='rm-error' style='color:{_ERROR}'>{_e(view.error)}</span>"
    head = (
        f"<div class='rm-head'><b>{_e(view.magic)}</b> "
        f"<span class='rm-status' style='color:{colour}'>{_e(state)}</span> "
        f"<span class='rm-elapsed' style='{_MUTED}'>{_e(view.timing or elapsed)}</span>"
        f"{error if view.error else ''}{_eta(view) if running else ''}</div>"
    )
    now = "live" if running else "after"
    cells = ["device", "", "before", now, "peak", *(["Δ"] if not running else []), "trend"]
    header = "".join(
        f"<th title='{_e(_TITLES.get(c, ''))}' style='{_CELL};font-weight:normal;{_MUTED}'>{c}</th>"
        for c in cells
    )
    # A workers row only once the cell has child processes (the report drops it too).
    shown = [row for row in view.rows if row.name != "workers" or row.peak > 0]
    rows = "".join(_row(row, running) for row in shown)
    happened, reasons = host_notes(list(view.notes))
    notes = "".join(f"<div class='rm-note' style='{_MUTED}'>{_e(n)}</div>" for n in happened)
    # Like the text line: the reasons are for a panel with no GPU row at all, not for a
    # GPU with one source missing (NVML rows while torch has not initialised CUDA).
    if reasons and all(not_own_gpu(r.name) for r in view.rows):
        notes += f"<div class='rm-note' style='{_MUTED}'>no GPU row: {_e('; '.join(reasons))}</div>"
    return (
        f"<div class='rm-panel' data-state='{state}' style='{_FONT};margin:2px 0'>"
        f"{head}<table class='rm-table' style='border-collapse:collapse;margin:0;border:none'>"
        f"<tr style='background:none'>{header}</tr>{rows}</table>{notes}{extra}</div>"
    )


def _eta(view: PanelView) -> str:
    """A bar of the time so far against last time's, and what that leaves; "" when unknown."""
    expected = view.expected_s
    if not expected or expected <= 0:
        return ""
    done = min(view.elapsed_s / expected, 1.0) * 100
    left = expected - view.elapsed_s
    words = f"about {format_seconds(left)} left" if left > 0 else f"{format_seconds(-left)} over"
    return (
        f" <span class='rm-eta' data-expected='{expected:.3f}' style='{_MUTED}'>"
        f"<span style='display:inline-block;vertical-align:middle;width:80px;height:6px;"
        f"background:{_BAR_BG};border-radius:2px;overflow:hidden'><span style='display:block;"
        f"width:{done:.1f}%;height:100%;background:{_PEAK}'></span></span>"
        f" last time {_e(format_seconds(expected))}, {_e(words)}</span>"
    )


def _row(row: PanelRow, running: bool) -> str:
    label = row.name if row.source != "NVML" else f"{row.name} NVML"
    kind = "exact" if row.peak_exact else "sampled"
    value = row.now if running else (row.after if row.after is not None else row.now)
    data = {
        "device": row.name,
        "source": row.source,
        "before": row.before,
        "peak": row.peak,
        "total": row.total if row.total is not None else "",
        ("live" if running else "after"): value,
        "peak-exact": str(row.peak_exact).lower(),
        "peak-rise": row.peak - row.before,
    }
    attrs = " ".join(f"data-{k}='{_e(str(v))}'" for k, v in data.items())
    pad = _CELL
    now_class = "rm-live" if running else "rm-after"
    delta = ""
    if not running:
        left = left_allocated(row.before, value, row.total)
        held = left and held_by_variables(value - row.before, row.named)
        colour = f"color:{_LEFT};font-weight:bold" if held else _MUTED
        why = ""
        if left and not held:
            why = f" title='{_e(NOT_VARIABLES)}'"
        delta = (
            f"<td class='rm-delta' data-held='{str(held).lower()}' style='{pad};{colour}'{why}>"
            f"{_e(format_delta(value - row.before))}</td>"
        )
    return (
        f"<tr class='rm-row' {attrs} style='background:none'>"
        f"<td class='rm-name' style='{pad}' title='{_e(row.source)}'>{_e(label)}</td>"
        f"<td class='rm-bar' style='{pad}'>{_bar(row.before, value, row.peak, row.total)}</td>"
        f"<td class='rm-before' style='{pad}'>{_e(format_bytes(row.before))}</td>"
        f"<td class='{now_class}' style='{pad};font-weight:bold'>{_e(format_bytes(value))}</td>"
        f"<td class='rm-peak' style='{pad}'>{_e(format_bytes(row.peak))} "
        f"<span class='rm-rise'>({_e(format_delta(row.peak - row.before))})</span> "
        f"<span style='{_MUTED}'>{kind}</span></td>"
        f"{delta}<td class='rm-trend' style='{pad}'>{_sparkline(row.series)}</td></tr>"
    )


def scale_of(before: int, peak: int, total: int | None) -> int | None:
    """The bytes a row's bar spans: the total, or less when the cell's range would not show.

    On a big machine a cell's memory is a few per cent of the total and its peak tick sits
    on top of the fill; the bar then spans a rounded 1.25 times the peak instead (the label
    says so), so before, now and peak can be told apart.
    """
    if not total:
        return None
    top = max(before, peak)
    if top * 4 >= total or top == 0:
        return total
    step = 1 << max(top.bit_length() - 3, 0)  # round up to 1/8 of the leading power of two
    return min(total, -(-top * 5 // 4 // step) * step)


def _bar(before: int, used: int, peak: int, total: int | None) -> str:
    """Used as a filled bar, a line at the start and a tick at the peak; empty without total."""
    scale = scale_of(before, peak, total)
    if not scale or not total:
        return ""

    def at(n: int) -> float:
        return min(n / scale, 1.0) * 100

    zoomed = scale < total
    label = f"of {format_bytes(scale)}" if zoomed else f"of {format_bytes(total)}"
    title = f"{format_bytes(used)} in use; the bar spans {label[3:]}; total {format_bytes(total)}"
    return (
        f"<span style='display:inline-flex;align-items:center;gap:4px'>"
        f"<span title='{_e(title)}' data-scale='{scale}' style='position:relative;display:"
        f"inline-block;width:120px;height:8px;background:{_BAR_BG};border-radius:2px;"
        f"overflow:hidden'><span style='display:block;width:{at(used):.1f}%;height:100%;"
        f"background:{_OK}'></span>"
        f"<span style='position:absolute;top:0;left:{at(before):.1f}%;width:1px;height:100%;"
        f"background:{_BEFORE}'></span>"
        f"<span class='rm-tick' style='position:absolute;top:0;left:calc({at(peak):.1f}% - 2px);"
        f"width:3px;height:100%;background:{_PEAK}'></span></span>"
        f"<span class='rm-scale' style='{_MUTED}'>{_e(label)}</span></span>"
    )


def _sparkline(series: Sequence[int], width: int = 96, height: int = 16) -> str:
    """The row's samples as a small line, labelled with their range; nothing until two."""
    if len(series) < 2:
        return ""
    low, high = min(series), max(series)
    span = (high - low) or 1
    step = width / (len(series) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 1 - (v - low) / span * (height - 2):.1f}"
        for i, v in enumerate(series)
    )
    low_text, high_text = format_bytes(low), format_bytes(high)
    scale = low_text if low_text == high_text else f"{low_text} to {high_text}"
    return (
        f"<svg width='{width}' height='{height}' style='vertical-align:middle'>"
        f"<polyline points='{points}' fill='none' stroke='{_PEAK}' stroke-width='1.5'/></svg>"
        f" <span class='rm-range' style='{_MUTED}'>{_e(scale)}</span>"
    )


def _e(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def rows_from(readings: Iterable[DeviceMemory]) -> list[PanelRow]:
    """Rows as a scope opened, one per reading."""
    return [PanelRow.opened(r) for r in readings]
