"""Watch mode's output: one compact line per cell, the full panel only for a cell worth one.

A watched ``y = 2`` gets ``1.2 ms · host 670 → 670 MiB (peak 670, +0)``; a cell that ran
longer than ``settings.watch_panel_s`` (its live panel appeared while it ran) or moved memory
by more than ``settings.watch_panel_mib`` ends with the full panel. With ``--log`` each cell
appends one JSON line (:func:`cell_record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from resmagic.config import settings
from resmagic.ipython.cells.stack import Layer
from resmagic.ipython.views.text import why_line
from resmagic.probes.devices import HOST_ROWS, host_notes
from resmagic.report import DeviceReport, GpuReport, Report, TimingReport
from resmagic.scopes.gpu import gpu_scope
from resmagic.store.rows import code_sha
from resmagic.units import format_seconds, scale_unit

if TYPE_CHECKING:
    from resmagic.ipython.cells.options import LayerFactory
    from resmagic.ipython.views.watch_log import WatchLog

__all__ = ["WatchOutput", "cell_record", "code_hash", "compact_line", "worth_panel"]


def compact_line(gpu: GpuReport | None, timing: TimingReport | None) -> str:
    """``1.75 s, cpu 1.70 s · host 670 → 823 MiB (peak 823, +153) · cuda:0 ...``."""
    report: Report | None = timing or gpu
    if report is None:
        return ""
    seconds = timing.wall_s if timing is not None else report.duration_s
    head = format_seconds(seconds)
    if timing is not None:
        head += f", cpu {format_seconds(timing.cpu_s)}"
    if report.status != "ok":
        head = f"{report.status} after {head}"
    parts = [head, *(_device(row) for row in _rows(gpu))]
    return " · ".join(parts)


def _rows(gpu: GpuReport | None) -> list[DeviceReport]:
    """One row per device: the exact source where a device has two (allocator over NVML)."""
    if gpu is None:
        return []
    exact = {row.name for row in gpu.devices if row.source != "NVML"}
    return [row for row in gpu.devices if row.source != "NVML" or row.name not in exact]


def _device(row: DeviceReport) -> str:
    before, after, peak, rise = scale_unit(
        [row.before_bytes, row.after_bytes, row.peak_bytes, row.peak_bytes - row.before_bytes]
    )
    unit = after.split(" ")[1]
    number = [text.split(" ")[0] for text in (before, after, peak, rise)]
    sign = "+" if not number[3].startswith("-") else ""
    label = row.name if row.source != "NVML" else f"{row.name} NVML"
    return f"{label} {number[0]} → {number[1]} {unit} (peak {number[2]}, {sign}{number[3]})"


def worth_panel(gpu: GpuReport) -> bool:
    """True when the cell moved memory on a device by more than ``settings.watch_panel_mib``."""
    limit = settings.watch_panel_mib << 20
    return any(
        max(row.peak_bytes - row.before_bytes, abs(row.delta_bytes)) > limit for row in gpu.devices
    )


def code_hash(code: str) -> str:
    """A short, stable name for a cell's source (the run store's :func:`code_sha`)."""
    return code_sha(code)


def cell_record(
    gpu: GpuReport | None, timing: TimingReport | None, code: str
) -> dict[str, Any] | None:
    """One watched cell as a JSON-ready dict: its number, code hash, outcome, time, memory."""
    report: Report | None = timing or gpu
    if report is None:
        return None
    record: dict[str, Any] = {
        "cell": report.cell,
        "code_sha256": code_hash(code),
        "started_at": report.started_at,
        "status": report.status,
        "duration_s": timing.wall_s if timing is not None else report.duration_s,
    }
    if timing is not None:
        record["cpu_s"] = timing.cpu_s
    if gpu is not None:
        record["devices"] = gpu.to_dict()["devices"]
    if report.error:
        record["error"] = report.error
    return record


class WatchOutput:
    """Gives the layers of one watched cell a single output (and one log line).

    Args:
        factory: builds the panel and the ``held by`` lines, and shows the output.
        layers: the cell's layers, built ``quiet``; their render callbacks are set here.
        panel: whether a kernel shows the live panel for a long cell.
        code: the cell's source, hashed for the log.
        log: the JSON-lines file each cell appends one record to, or None.
    """

    def __init__(
        self,
        factory: LayerFactory,
        layers: Sequence[Layer],
        *,
        panel: bool,
        code: str,
        log: WatchLog | None,
    ) -> None:
        self.factory, self.code, self.log = factory, code, log
        self.gpu = next((lay for lay in layers if lay.magic == "gpu_scope"), None)
        self.timed = next((lay for lay in layers if lay.magic == "timed"), None)
        self.view: Any = None
        if self.gpu is not None and isinstance(self.gpu.scope, gpu_scope) and panel:
            self.view = factory.panel(self.gpu.scope, "watch", delay=settings.watch_panel_s)
            if self.view is not None:
                self.gpu.start, self.gpu.stop = self.view.start, self.view.stop
        if layers:
            layers[-1].render = self.render  # renders run after every scope has closed

    def render(self, _last: Report) -> None:
        """Show the cell's line (or its full panel) and append its log record.

        A log the disk refuses never costs the cell its line (reliability 2026-12-06 #6):
        the first refusal is said under the line, later ones are counted.
        """
        gpu = self._report(self.gpu, GpuReport)
        timing = self._report(self.timed, TimingReport)
        held = [*(self.factory.held(gpu) if gpu is not None else []), *self._log(gpu, timing)]
        view = self.view
        if gpu is not None and view is not None and (view.shown or worth_panel(gpu)):
            extra = [timing.summary()] if timing is not None else []
            view.finish(view.summary(gpu, [*extra, *held]))
            return
        if view is not None:
            view.finish(None)
        lines = [compact_line(gpu, timing) + self._last_time(timing or gpu)]
        happened, reasons = host_notes(gpu.notes if gpu is not None else ())
        lines += [f"  {note}" for note in happened]
        if gpu is not None and reasons and all(r.name in HOST_ROWS for r in _rows(gpu)):
            note = self.factory.say_once(why_line(reasons))
            lines += [note] if note else []
        cell = (timing or gpu).cell if (timing or gpu) is not None else None
        self.factory.output.show({"text/plain": "\n".join([*lines, *held])}, cell)

    def _log(self, gpu: GpuReport | None, timing: TimingReport | None) -> list[str]:
        """Append the cell's record to the ``--log`` file; the log's note, if it has one."""
        if self.log is None:
            return []
        record = cell_record(gpu, timing, self.code)
        note = self.log.append(record) if record is not None else None
        return [f"  {note}"] if note else []

    def _last_time(self, report: Report | None) -> str:
        last_time = self.factory.last_time
        if report is None or last_time is None:
            return ""
        return last_time(report, peak_from="gpu_scope")  # the cell's time, gpu_scope's peak

    @staticmethod
    def _report(layer: Layer | None, kind: type[Any]) -> Any:
        report = layer.scope.report if layer is not None else None
        return report if isinstance(report, kind) else None
