"""Report rows built from plain numbers, for tests of what reports become."""

from __future__ import annotations

from typing import Any

from resmagic.report import DeviceReport, GpuReport, Status, TimingReport

MiB = 1 << 20
BASE: dict[str, Any] = {"duration_s": 1.5, "started_at": 1700000000.0}


def host_row(
    before: int = 100 * MiB, peak: int = 300 * MiB, after: int = 110 * MiB
) -> DeviceReport:
    """A host RSS row with an exact peak, on an 8 GiB machine."""
    return DeviceReport(
        name="host",
        source="RSS",
        before_bytes=before,
        peak_bytes=peak,
        after_bytes=after,
        total_bytes=8 << 30,
        peak_exact=True,
    )


def gpu_report() -> GpuReport:
    """A gpu_scope report with a host row and an NVML row."""
    nvml_row = DeviceReport(
        name="cuda:0",
        source="NVML",
        before_bytes=MiB,
        peak_bytes=2 * MiB,
        after_bytes=MiB,
        total_bytes=16 << 30,
        peak_exact=False,
    )
    return GpuReport(status="ok", **BASE, devices=(host_row(), nvml_row), notes=("a", "b"))


def timing_report(label: str | None = "train", status: Status = "ok") -> TimingReport:
    """A timed report of 1.5 s."""
    error = None if status == "ok" else "ValueError: bad"
    return TimingReport(
        status=status,
        error=error,
        **BASE,
        label=label,
        wall_s=1.5,
        cpu_s=0.25,
    )


def ranks_report(rank: int = 0) -> GpuReport:
    """``gpu_scope(ranks=True)``'s report on ``rank`` of 3: rank 1 peaked, rank 2 is missing."""
    from resmagic.ranktable import RankDevice, RankRow, RankTable

    def row(r: int, peak_mib: int) -> RankRow:
        host = RankDevice("host", "RSS", 100 * MiB, peak_mib * MiB, 110 * MiB, 8 << 30, True)
        return RankRow(r, "ok", 1.0 + r, None, (host,), 1000 + r, "node")

    missing = RankRow(2, "missing", None, "no record within 60 s")
    rows = (row(0, 300), row(1, 500), missing) if rank == 0 else (row(rank, 500),)
    table = RankTable(rank, 3, rows)
    return GpuReport(status="ok", **BASE, devices=(host_row(),), ranks=table)
