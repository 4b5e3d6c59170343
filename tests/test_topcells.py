"""Which cells used the most: a cell run's reports folded, the cells ranked three ways."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from resmagic.cellfigures import CellFigures, fold
from resmagic.report import DeviceReport, GpuReport, Report, TimingReport
from resmagic.topcells import TABLE, table_of, top_cells
from tests.reports import BASE, MiB, host_row, timing_report


def _gpu(cell: int | None, before: int, peak: int, after: int, **row: object) -> GpuReport:
    rows = [host_row(before * MiB, peak * MiB, after * MiB)]
    if row:
        rows.append(dataclasses.replace(host_row(), **row))  # type: ignore[arg-type]
    fields = {**BASE, "duration_s": 0.01}  # the cell's time is its timed report's
    return GpuReport(status="ok", **fields, cell=cell, devices=tuple(rows))


def _timed(cell: int | None, wall_s: float, label: str | None = None) -> TimingReport:
    return dataclasses.replace(timing_report(label=label), cell=cell, wall_s=wall_s)


def _run(reports: Iterable[Report], cell_id: str | None = None) -> CellFigures:
    run = None
    for report in reports:
        run = fold(run, report, cell_id=cell_id)
    assert run is not None
    return run


def _cells(rows: list[dict[str, object]]) -> list[object]:
    return [row["cell"] for row in rows]


def test_a_cells_reports_fold_into_one_run() -> None:
    inner = _gpu(4, 100, 150, 120)
    outer = _gpu(4, 100, 400, 300)  # the cell's own gpu_scope closes last
    failed = dataclasses.replace(_timed(4, 2.5, "train"), status="error", error="ValueError: x")
    later = dataclasses.replace(_timed(4, 0.5), status="interrupted")
    run = _run([inner, failed, later, outer], cell_id="abc")
    assert (run.cell, run.cell_id, run.label, run.reports) == (4, "abc", "train", 4)
    assert (run.status, run.error) == ("error", "ValueError: x")  # the first failure says why
    assert run.wall_s == 2.5
    host = run.devices["host"]
    assert (host.peak_above_start_bytes, host.held_bytes, host.peak_bytes) == (
        300 * MiB,
        200 * MiB,
        400 * MiB,
    )


def test_cells_rank_by_peak_above_start_per_device_by_held_and_by_time() -> None:
    runs = [
        _run([_gpu(1, 100, 900, 100), _timed(1, 0.1)]),  # big peak, nothing held
        _run([_gpu(2, 100, 300, 250), _timed(2, 3.0)]),  # the slowest, holds 150
        _run([_gpu(3, 250, 500, 450), _timed(3, 1.0)]),  # holds 200
        _run([_gpu(4, 450, 460, 300), _timed(4, 2.0)]),  # freed memory: holds none
        _run([_gpu(5, 300, 300, 300), _timed(5, 0.0)]),  # no rise, nothing held
    ]
    top = top_cells(runs, n=4)
    assert (top["cells"], top["runs"]) == (5, 5)
    assert _cells(top["peak"]["host"]) == [1, 3, 2, 4]
    assert _cells(top_cells(runs, n=3)["peak"]["host"]) == [1, 3, 2]
    assert _cells(top["held"]["host"]) == [3, 2]
    assert _cells(top["time"]) == [2, 4, 3, 1]
    first = top["peak"]["host"][0]
    assert first["rank"] == 1
    assert first["devices"] == {
        "host": {"peak_above_start_mib": 800.0, "held_mib": 0.0, "peak_mib": 900.0}
    }


def test_a_gpu_is_ranked_on_its_own_and_workers_and_the_container_never() -> None:
    gpu = {"name": "cuda:0", "source": "torch allocator", "total_bytes": None}
    workers = {"name": "workers", "source": "USS", "peak_bytes": 10_000 * MiB}
    runs = [
        _run([_gpu(1, 100, 200, 100, **gpu, before_bytes=0, peak_bytes=MiB, after_bytes=0)]),
        _run([_gpu(2, 100, 150, 100, **workers)]),
    ]
    top = top_cells(runs)
    assert sorted(top["peak"]) == ["cuda:0", "host"]
    assert _cells(top["peak"]["cuda:0"]) == [1]
    assert _cells(top["peak"]["host"]) == [1, 2]


def test_a_cell_run_several_times_shows_its_last_run_and_how_many() -> None:
    runs = [
        _run([_timed(3, 5.0)], cell_id="train-cell"),
        _run([_timed(4, 1.0)], cell_id="other"),
        _run([_timed(7, 2.0)], cell_id="train-cell"),
        _run([_timed(8, 9.0)]),  # a terminal: no id, its own cell
        _run([_timed(9, 9.0)]),
    ]
    top = top_cells(runs)
    assert [(r["cell"], r["runs"]) for r in top["time"]] == [(8, 1), (9, 1), (7, 2), (4, 1)]
    assert (top["cells"], top["runs"]) == (4, 5)


def test_outside_ipython_a_label_is_the_cell() -> None:
    runs = [_run([_timed(None, 1.0, "step")]), _run([_timed(None, 3.0, "step")])]
    runs.append(_run([_timed(None, 2.0)]))
    assert [(r["label"], r["runs"], r["wall_s"]) for r in top_cells(runs)["time"]] == [
        ("step", 2, 3.0),
        (None, 1, 2.0),
    ]


def test_the_table_has_a_row_per_ranking_device_and_rank() -> None:
    runs = [_run([_gpu(1, 100, 900, 200), _timed(1, 0.1, "load")]), _run([_timed(2, 1.0)])]
    rows = table_of(top_cells(runs))
    assert [list(row) for row in rows] == [list(TABLE)] * 4
    assert [(r["by"], r["device"], r["rank"], r["cell"]) for r in rows] == [
        ("peak", "host", 1, 1),
        ("held", "host", 1, 1),
        ("time", None, 1, 2),
        ("time", None, 2, 1),
    ]
    peak = rows[0]
    assert (peak["peak_above_start_mib"], peak["held_mib"], peak["peak_mib"]) == (800, 100, 900)
    assert (peak["label"], peak["wall_s"]) == ("load", 0.1)
    assert rows[2]["peak_mib"] is None  # a time row is about no device
    assert table_of(top_cells([])) == []


def test_error_text_in_a_row_has_its_secrets_masked() -> None:
    report = dataclasses.replace(
        _timed(1, 1.0), status="error", error="OSError: https://u:pw@host/x?token=abc"
    )
    (row,) = top_cells([_run([report])])["time"]
    assert row["error"] == "OSError: https://u:***@host/x?token=***"


def test_device_rows_come_from_the_last_gpu_report_only() -> None:
    row = DeviceReport(
        name="cuda:0",
        source="NVML",
        before_bytes=0,
        peak_bytes=MiB,
        after_bytes=0,
        total_bytes=None,
        peak_exact=False,
    )
    first = GpuReport(status="ok", **BASE, cell=1, devices=(host_row(), row))
    run = _run([first, _gpu(1, 100, 200, 100)])
    assert sorted(run.devices) == ["host"]
