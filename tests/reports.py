"""Report rows built from plain numbers, for tests of what reports become."""

from __future__ import annotations

from resmagic.report import DeviceReport

MiB = 1 << 20


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
