"""The report records made fast, for the scopes' hot paths: the same objects, cheaper.

A frozen slots dataclass's ``__init__`` sets each field through ``object.__setattr__``;
these makers set them through the slots' own setters, unrolled (issue 26: ``timed`` builds a
report per block, ``gpu_scope`` a row per device per block). No ``__post_init__`` is skipped:
the record classes have none.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from resmagic.report import DeviceReport, GpuReport, Holder, Status, TimingReport

__all__ = ["device_report", "gpu_report", "timing_report"]


# A frozen dataclass sets each field through object.__setattr__ (1.23 us for a
# TimingReport's ten); its slots' own setters do the same job in 0.53 us (issue 26).
_SETTERS = tuple(getattr(TimingReport, f.name).__set__ for f in dataclasses.fields(TimingReport))
_new = object.__new__


def timing_report(
    status: Status,
    duration_s: float,
    started_at: float,
    cell: int | None,
    error: str | None,
    label: str | None,
    wall_s: float,
    cpu_s: float,
    cuda_synced: bool,
) -> TimingReport:
    """``TimingReport(...)`` of these fields, in the dataclass's order, made faster.

    The same object the dataclass's ``__init__`` makes (it has no ``__post_init__``), for
    ``timed``'s path, where the report is built once per block.
    """
    report: TimingReport = _new(TimingReport)
    s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 = _SETTERS
    s0(report, status)
    s1(report, duration_s)
    s2(report, started_at)
    s3(report, cell)
    s4(report, error)
    s5(report, label)
    s6(report, wall_s)
    s7(report, cpu_s)
    s8(report, cuda_synced)
    s9(report, None)  # ranks: a ranks scope adds its table afterwards (dataclasses.replace)
    return report


_DEVICE_SETTERS = tuple(
    getattr(DeviceReport, f.name).__set__ for f in dataclasses.fields(DeviceReport)
)
_GPU_SETTERS = tuple(getattr(GpuReport, f.name).__set__ for f in dataclasses.fields(GpuReport))


def device_report(
    name: str,
    source: str,
    before_bytes: int,
    peak_bytes: int,
    after_bytes: int,
    total_bytes: int | None,
    peak_exact: bool,
    reserved_bytes: int | None,
) -> DeviceReport:
    """``DeviceReport(...)`` of these fields, made faster: the object its ``__init__`` makes.

    ``gpu_scope`` builds one per row per block (issue 26, G7).
    """
    row: DeviceReport = _new(DeviceReport)
    s0, s1, s2, s3, s4, s5, s6, s7 = _DEVICE_SETTERS
    s0(row, name)
    s1(row, source)
    s2(row, before_bytes)
    s3(row, peak_bytes)
    s4(row, after_bytes)
    s5(row, total_bytes)
    s6(row, peak_exact)
    s7(row, reserved_bytes)
    return row


def gpu_report(
    common: dict[str, Any],
    devices: tuple[DeviceReport, ...],
    notes: tuple[str, ...],
    reclaimed: bool,
    holders: tuple[Holder, ...],
    holders_when: Literal["", "after", "error"],
) -> GpuReport:
    """``GpuReport(**common, ...)``, made faster: the object the dataclass's ``__init__`` makes.

    ``common`` is :meth:`~resmagic.scopes.base.Scope.common`'s five fields; ``ranks`` is
    None (a ranks scope adds its table afterwards).
    """
    report: GpuReport = _new(GpuReport)
    s = _GPU_SETTERS
    s[0](report, common["status"])
    s[1](report, common["duration_s"])
    s[2](report, common["started_at"])
    s[3](report, common["cell"])
    s[4](report, common["error"])
    s[5](report, devices)
    s[6](report, notes)
    s[7](report, reclaimed)
    s[8](report, holders)
    s[9](report, holders_when)
    s[10](report, None)
    return report
