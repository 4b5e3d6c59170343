"""Watch mode's compact line and the panel's bar scale, from reports built by hand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from resmagic.config import settings
from resmagic.ipython.views.panel_html import scale_of
from resmagic.ipython.views.watch_line import cell_record, compact_line, worth_panel
from resmagic.report import DeviceReport, GpuReport, TimingReport
from resmagic.units import scale_unit

MiB, GiB = 1 << 20, 1 << 30


def row(name: str, before: int, peak: int, after: int, source: str = "RSS") -> DeviceReport:
    return DeviceReport(
        name=name,
        source=source,
        before_bytes=before,
        peak_bytes=peak,
        after_bytes=after,
        total_bytes=80 * GiB,
        peak_exact=True,
    )


def gpu(*rows: DeviceReport, status: str = "ok") -> GpuReport:
    return GpuReport(status=status, duration_s=1.75, started_at=0.0, cell=4, devices=rows)  # type: ignore[arg-type]


TIMING = TimingReport(status="ok", duration_s=1.75, started_at=0.0, cell=4, wall_s=1.75, cpu_s=1.7)


def test_the_line_reads_like_the_issue_asks() -> None:
    report = gpu(
        row("host", 670 * MiB, 823 * MiB, 823 * MiB),
        row("cuda:0", int(2.1 * GiB), int(5.3 * GiB), int(2.1 * GiB), "torch allocator"),
        row("cuda:0", 3 * GiB, 6 * GiB, 3 * GiB, "NVML"),
    )
    assert compact_line(report, TIMING) == (
        "1.75 s, cpu 1.7 s · host 670 → 823 MiB (peak 823 MiB, +153 MiB)"
        " · cuda:0 2.10 → 2.10 GiB (peak 5.30 GiB, +3.20 GiB)"
    )


def test_a_device_seen_only_by_nvml_keeps_its_row_and_says_so() -> None:
    line = compact_line(gpu(row("cuda:0", GiB, 2 * GiB, GiB, "NVML")), None)
    assert line == "1.75 s · cuda:0 NVML 1.00 → 1.00 GiB (peak 2.00 GiB, +1.00 GiB)"


def test_a_failed_cell_says_how_it_ended() -> None:
    line = compact_line(gpu(row("host", MiB, MiB, MiB), status="error"), None)
    assert line.startswith("error after 1.75 s · host ")


@pytest.fixture
def threshold() -> Iterator[None]:
    old = settings.watch_panel_mib
    settings.watch_panel_mib = 256
    yield
    settings.watch_panel_mib = old


@pytest.mark.usefixtures("threshold")
def test_memory_moved_by_more_than_the_threshold_earns_the_panel() -> None:
    assert not worth_panel(gpu(row("host", GiB, GiB + 200 * MiB, GiB)))
    assert worth_panel(gpu(row("host", GiB, GiB + 300 * MiB, GiB)))  # rose and fell back
    assert worth_panel(gpu(row("host", GiB + 300 * MiB, GiB + 300 * MiB, GiB)))  # freed


def test_the_log_record_names_the_cell_not_its_code() -> None:
    record = cell_record(gpu(row("host", MiB, MiB, MiB)), TIMING, "secret = 42")
    assert record is not None
    assert record["cell"] == 4
    assert "secret" not in str(record)
    assert record["cpu_s"] == 1.7
    assert record["devices"][0]["peak_bytes"] == MiB


def test_a_bar_spans_the_total_when_the_cell_fills_enough_of_it() -> None:
    assert scale_of(10 * GiB, 30 * GiB, 80 * GiB) == 80 * GiB


def test_a_bar_zooms_to_the_cells_range_on_a_big_machine() -> None:
    scale = scale_of(670 * MiB, 823 * MiB, int(23.5 * GiB))
    assert scale is not None
    assert 823 * MiB * 1.25 <= scale <= 823 * MiB * 1.25 * 1.2
    assert scale_of(0, 0, GiB) == GiB  # nothing in use: the whole device
    assert scale_of(MiB, MiB, None) is None


def _device_line_before(row: DeviceReport) -> str:
    """A device's part of the line as written before issue 26 (C4): the reference text."""
    before, after, peak, rise = scale_unit(
        [row.before_bytes, row.after_bytes, row.peak_bytes, row.peak_bytes - row.before_bytes]
    )
    unit = after.split(" ")[1]
    number = [text.split(" ")[0] for text in (before, after, peak, rise)]
    sign = "+" if not number[3].startswith("-") else ""
    label = row.name if row.source != "NVML" else f"{row.name} NVML"
    return (
        f"{label} {number[0]} → {number[1]} {unit} (peak {number[2]} {unit},"
        f" {sign}{number[3]} {unit})"
    )


_SIZES = st.integers(0, 1 << 45) | st.sampled_from([0, 1, 1023, 1024, 1023 * MiB, 80 * GiB])


@given(st.lists(st.tuples(_SIZES, _SIZES, _SIZES, st.booleans()), min_size=1, max_size=3))
@hypothesis_settings(max_examples=1500, deadline=None)
def test_the_line_is_the_text_it_was_for_any_memory(
    rows: list[tuple[int, int, int, bool]],
) -> None:
    devices = [
        row(f"cuda:{i}", b, max(b, peak), after, "NVML") if nvml else row("host", b, peak, after)
        for i, (b, peak, after, nvml) in enumerate(rows)
    ]
    timing = TimingReport(status="ok", duration_s=0.002, started_at=0.0, wall_s=0.002, cpu_s=0.0019)
    line = compact_line(gpu(*devices), timing)
    head = compact_line(None, timing)
    assert line == " · ".join([head, *(_device_line_before(d) for d in devices)])
