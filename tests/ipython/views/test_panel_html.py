"""The panel's markup, from plain values: rows, live vs final columns, held memory, the trend."""

from __future__ import annotations

from typing import Any

from resmagic.ipython.views.held import bound_names
from resmagic.ipython.views.panel_html import (
    MAX_POINTS,
    PanelRow,
    PanelView,
    left_allocated,
    render,
    rows_from,
)
from resmagic.probes.reading import DeviceMemory
from resmagic.report import GpuReport
from tests.panelhtml import parse_panel
from tests.reports import host_row

MiB = 1 << 20


def reading(used: int, peak: int | None = None, name: str = "host", source: str = "RSS") -> Any:
    return DeviceMemory(name, used, 8 << 30, source, peak_bytes=peak)


def report(before: int, peak: int, after: int, status: str = "ok") -> GpuReport:
    return GpuReport(
        status=status,  # type: ignore[arg-type]
        duration_s=1.5,
        started_at=0.0,
        devices=(host_row(before, peak, after),),
        error="MemoryError: x" if status == "error" else None,
    )


def test_live_rows_follow_readings_and_keep_the_peak() -> None:
    view = PanelView("gpu_scope", rows_from([reading(100 * MiB, 100 * MiB)]))
    row = view.rows[0]
    row.observe(reading(300 * MiB, 320 * MiB))
    row.observe(reading(150 * MiB, 320 * MiB))
    panel = parse_panel(render(view))
    host = panel["rows"][("host", "RSS")]
    assert panel["state"] == "running"
    assert (host["before"], host["live"], host["peak"]) == (100 * MiB, 150 * MiB, 320 * MiB)
    assert "after" not in host


def test_a_sampled_peak_is_the_highest_reading() -> None:
    row = PanelRow.opened(reading(10 * MiB, name="cuda:0", source="NVML"))
    assert not row.peak_exact
    for used in (30, 70, 20):
        row.observe(reading(used * MiB, name="cuda:0", source="NVML"))
    assert row.peak == 70 * MiB


def test_closing_takes_the_reports_exact_values() -> None:
    view = PanelView("gpu_scope", rows_from([reading(100 * MiB)]))
    view.rows[0].observe(reading(250 * MiB))
    view.close(report(101 * MiB, 400 * MiB, 130 * MiB))
    panel = parse_panel(render(view))
    host = panel["rows"][("host", "RSS")]
    assert panel["state"] == "ok"
    assert (host["before"], host["peak"], host["after"]) == (101 * MiB, 400 * MiB, 130 * MiB)
    assert "rm-after" in render(view)
    assert "rm-live" not in render(view)


def test_held_memory_is_orange_only_when_variables_hold_most_of_it() -> None:
    # UX audit 2026-12-06 P2-3: an orange Δ for the allocator's own growth sent users
    # chasing a leak no variable held
    assert left_allocated(100 * MiB, 130 * MiB, 8 << 30)
    assert not left_allocated(100 * MiB, 100 * MiB + 4096, 8 << 30)
    view = PanelView("gpu_scope", rows_from([reading(100 * MiB)]))
    left = report(100 * MiB, 400 * MiB, 130 * MiB)
    view.close(left)
    assert "data-held='false'" in render(view)  # nobody looked: not orange
    assert "not held by your variables" in render(view)
    view.rows[0].named = 20 * MiB  # the cell's own variables hold most of the +30 MiB
    assert "data-held='true'" in render(view)
    view.rows[0].named = 5 * MiB
    assert "data-held='false'" in render(view)
    view.close(report(100 * MiB, 400 * MiB, 100 * MiB))
    assert "data-held='false'" in render(view)


def test_an_error_shows_in_the_head() -> None:
    view = PanelView("gpu_scope", rows_from([reading(MiB)]))
    view.close(report(MiB, MiB, MiB, status="error"))
    markup = render(view)
    assert parse_panel(markup)["state"] == "error"
    assert "MemoryError: x" in markup


def test_the_trend_stays_bounded_and_keeps_the_spike() -> None:
    row = PanelRow.opened(reading(MiB))
    for i in range(10 * MAX_POINTS):
        row.observe(reading((999 if i == 1234 else 1) * MiB))
    assert len(row.series) <= MAX_POINTS
    assert max(row.series) == 999 * MiB


def test_markup_is_one_line_and_escapes_text() -> None:
    view = PanelView("gpu<scope>", rows_from([reading(MiB)]), notes=("NVML unavailable: <none>",))
    markup = render(view)
    assert "\n" not in markup
    assert "<scope>" not in markup
    assert "&lt;none&gt;" in markup
    assert "rm-note" in markup


def test_no_gpu_line_only_when_there_is_no_gpu_row() -> None:
    """NVML rows while torch has not initialised CUDA: a GPU is shown, nothing to explain."""
    notes = ("torch allocator: CUDA not initialised yet",)
    rows = rows_from([reading(MiB), reading(2 * MiB, name="cuda:0", source="NVML")])
    assert "rm-note" not in render(PanelView("gpu_scope", rows, notes=notes))
    assert "rm-note" in render(PanelView("gpu_scope", rows_from([reading(MiB)]), notes=notes))


def test_what_happened_in_the_container_is_said_beside_a_gpu_row() -> None:
    # Built by hand: a GPU row and an OOM-kill note, which only a real GPU run would give.
    from resmagic.ipython.views.panel_html import PanelView, render
    from resmagic.ipython.views.text import render_report
    from resmagic.report import DeviceReport, GpuReport

    killed = "container: the OOM killer killed a process in this cgroup during the block"
    row = DeviceReport(
        name="cuda:0",
        source="torch allocator",
        before_bytes=0,
        peak_bytes=1,
        after_bytes=0,
        total_bytes=2,
        peak_exact=True,
    )
    report = GpuReport(
        status="ok", duration_s=0.1, started_at=0.0, devices=(row,), notes=(killed, "NVML: x")
    )
    text = render_report(report)
    assert f"\n  {killed}" in text
    assert "no GPU row" not in text  # there is one: the NVML reason is not said
    view = PanelView("gpu_scope", [])
    view.close(report)
    assert killed in render(view)


def test_the_names_a_cell_binds_are_its_own_not_its_functions_locals() -> None:
    source = "# header\nx = 1\nfor i in range(3):\n    y = i\nwith open(p) as f:\n    pass\n"
    source += "def g():\n    z = 2\nimport os\n(a, b) = 1, 2\nobj.attr = 3\n"
    assert sorted(bound_names(source)) == ["a", "b", "f", "i", "x", "y"]
    assert bound_names("get_ipython().run_line_magic('x', '') +") == []
