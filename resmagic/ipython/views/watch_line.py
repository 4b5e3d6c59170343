"""Watch mode's line per cell, whether a cell is worth the full panel, its ``--log`` record.

A watched ``y = 2`` gets ``1.2 ms · host 670 → 670 MiB (peak 670 MiB, +0 MiB)``; a cell that ran
longer than ``settings.watch_panel_s`` (its live panel appeared while it ran) or moved memory
by more than ``settings.watch_panel_mib`` ends with the full panel
(:class:`resmagic.ipython.watch.WatchOutput` decides). :func:`cell_record` is the JSON
line ``--log`` appends (the file is :mod:`resmagic.ipython.views.watch_log`'s job).
"""

from __future__ import annotations

from typing import Any

from resmagic.config import settings
from resmagic.report import DeviceReport, GpuReport, Report, TimingReport
from resmagic.store.rows import code_sha
from resmagic.units import format_seconds, scale_numbers

__all__ = ["cell_record", "compact_line", "rows_of", "worth_panel"]


def compact_line(gpu: GpuReport | None, timing: TimingReport | None) -> str:
    """``1.75 s, cpu 1.70 s · host 670 → 823 MiB (peak 823 MiB, +153 MiB) · cuda:0 ...``."""
    report: Report | None = timing or gpu
    if report is None:
        return ""
    seconds = timing.wall_s if timing is not None else report.duration_s
    head = format_seconds(seconds)
    if timing is not None:
        head += f", cpu {format_seconds(timing.cpu_s)}"
    if report.status != "ok":
        head = f"{report.status} after {head}"
    parts = [head, *(_device(row) for row in rows_of(gpu))]
    return " · ".join(parts)


def rows_of(gpu: GpuReport | None) -> list[DeviceReport]:
    """One row per device: the exact source where a device has two (allocator over NVML)."""
    if gpu is None:
        return []
    exact = {row.name for row in gpu.devices if row.source != "NVML"}
    return [row for row in gpu.devices if row.source != "NVML" or row.name not in exact]


def _device(row: DeviceReport) -> str:
    before, peak = row.before_bytes, row.peak_bytes
    # The numbers and their unit apart: no texts split again per cell (issue 26, C4).
    number, unit = scale_numbers([before, row.after_bytes, peak, peak - before])
    sign = "+" if not number[3].startswith("-") else ""
    label = row.name if row.source != "NVML" else f"{row.name} NVML"
    # The peak and the rise carry the unit too: a bare "+1.17" read as nothing (UX audit
    # 2026-12-06 P3-4).
    return (
        f"{label} {number[0]} → {number[1]} {unit} (peak {number[2]} {unit},"
        f" {sign}{number[3]} {unit})"
    )


def worth_panel(gpu: GpuReport) -> bool:
    """True when the cell moved memory on a device by more than ``settings.watch_panel_mib``."""
    limit = settings.watch_panel_mib << 20
    return any(
        max(row.peak_bytes - row.before_bytes, abs(row.delta_bytes)) > limit for row in gpu.devices
    )


def cell_record(
    gpu: GpuReport | None, timing: TimingReport | None, code: str
) -> dict[str, Any] | None:
    """One watched cell as a JSON-ready dict: its number, code hash, outcome, time, memory."""
    report: Report | None = timing or gpu
    if report is None:
        return None
    record: dict[str, Any] = {
        "cell": report.cell,
        "code_sha256": code_sha(code),  # the run store's name for a cell's source
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
