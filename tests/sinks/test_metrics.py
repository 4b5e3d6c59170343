"""What a report becomes in a tracker: MiB and seconds in names MLflow accepts, params, tags."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric_name

from resmagic.cellfigures import CellFigures, fold, mib
from resmagic.report import (
    DeviceReport,
    GpuReport,
    LogReport,
    Status,
    TransactionReport,
)
from resmagic.sinks.metrics import cell_tags, clean_name, metrics_of, params_of, series_of
from tests.reports import BASE, MiB, gpu_report, host_row, timing_report


def _valid_for_mlflow(name: str) -> bool:
    try:
        _validate_metric_name(name)
    except MlflowException:
        return False
    return True


def test_memory_is_in_mib_with_the_unit_in_the_name_and_no_bytes_left() -> None:
    # UX audit 2026-12-06 P2-4: the charts read 900000000 on their axis.
    metrics = metrics_of(gpu_report())
    assert metrics == {
        "gpu_scope.duration_s": 1.5,
        "gpu_scope.host.before_mib": 100.0,
        "gpu_scope.host.peak_mib": 300.0,
        "gpu_scope.host.after_mib": 110.0,
        "gpu_scope.host.peak_above_start_mib": 200.0,
        "gpu_scope.host.held_mib": 10.0,
        "gpu_scope.cuda:0.nvml.before_mib": 1.0,
        "gpu_scope.cuda:0.nvml.peak_mib": 2.0,
        "gpu_scope.cuda:0.nvml.after_mib": 1.0,
        "gpu_scope.cuda:0.nvml.peak_above_start_mib": 1.0,
        "gpu_scope.cuda:0.nvml.held_mib": 0.0,
    }
    assert not [name for name in metrics if "bytes" in name or "total" in name]


def test_mib_are_rounded_to_the_kib() -> None:
    assert mib(900_000_000) == 858.307
    assert mib(-1536) == -0.001


def test_capacities_and_sources_are_params_not_metrics() -> None:
    assert params_of(gpu_report()) == {
        "device.host.total_mib": "8192",
        "device.host.source": "RSS",
        "device.cuda:0.nvml.total_mib": "16384",
        "device.cuda:0.nvml.source": "NVML",
    }
    assert params_of(timing_report()) == {}


def test_the_torch_allocator_row_is_the_device_itself() -> None:
    row = DeviceReport(
        name="cuda:1",
        source="torch allocator",
        before_bytes=0,
        peak_bytes=5 * MiB,
        after_bytes=MiB,
        total_bytes=None,
        peak_exact=True,
        reserved_bytes=2 * MiB,
    )
    report = GpuReport(status="ok", **BASE, devices=(host_row(), row))
    metrics = metrics_of(report)
    assert metrics["gpu_scope.cuda:1.peak_mib"] == 5.0
    assert metrics["gpu_scope.cuda:1.reserved_mib"] == 2.0
    assert params_of(report)["device.cuda:1.source"] == "torch allocator"
    assert "device.cuda:1.total_mib" not in params_of(report)  # unknown is left out, not 0


def test_timed_is_named_by_its_label_with_wall_and_cpu_seconds() -> None:
    assert metrics_of(timing_report(label="train")) == {
        "timed.train.wall_s": 1.5,
        "timed.train.cpu_s": 0.25,
    }


def test_an_unlabelled_timing_reads_as_the_cells_or_a_blocks() -> None:
    # UX audit 2026-12-06 P2-4: a watched cell logged a bare timed.wall_s beside
    # timed.train.wall_s.
    in_cell = dataclasses.replace(timing_report(label=None), cell=7)
    assert set(metrics_of(in_cell)) == {"timed.cell.wall_s", "timed.cell.cpu_s"}
    assert series_of(in_cell) == "timed.cell"
    assert set(metrics_of(timing_report(label=None))) == {"timed.block.wall_s", "timed.block.cpu_s"}
    assert series_of(gpu_report()) == "gpu_scope"


def test_log_and_transaction_reports_give_their_counts() -> None:
    log = LogReport(status="ok", **BASE, path="x.log", logger="e", run_id="r", records=7, lost=2)
    assert metrics_of(log) == {
        "experiment_log.duration_s": 1.5,
        "experiment_log.records": 7,
        "experiment_log.lost": 2,  # records a full disk refused: a tracker sees the loss too
    }
    tx = TransactionReport(status="ok", **BASE, path="a.db", committed=True, changes=3)
    assert metrics_of(tx) == {"db_transaction.duration_s": 1.5, "db_transaction.changes": 3}


def test_a_label_mlflow_would_refuse_is_cleaned() -> None:
    assert clean_name("train/epoch 1 (lr=3e-4)!") == "train_epoch 1 _lr_3e-4__"
    assert set(metrics_of(timing_report(label="ü/../x"))) == {
        "timed.__.._x.wall_s",
        "timed.__.._x.cpu_s",
    }


@settings(deadline=None)  # a loaded 2-core machine: no timing in tests
@given(st.text(max_size=300))
def test_every_metric_name_is_one_mlflow_accepts(label: str) -> None:
    for name in metrics_of(timing_report(label=label)):
        assert _valid_for_mlflow(name), name


def _run(status: Status) -> CellFigures:
    report = dataclasses.replace(timing_report(status=status), cell=12)
    return fold(None, report, cell_id="c-12", step=("timed.train", 3))


def test_each_cell_is_tagged_with_its_status_id_label_and_steps() -> None:
    assert cell_tags("cell.12", _run("ok")) == {
        "cell.12.status": "ok",
        "cell.12.id": "c-12",
        "cell.12.label": "train",
        "cell.12.steps": "timed.train 3",
    }


def test_a_failed_cell_is_tagged_with_its_error_secrets_masked() -> None:
    failed = dataclasses.replace(_run("error"), error="OSError: http://u:s3cr3t@host/x")
    tags = cell_tags("cell.12", failed)
    assert tags["cell.12.status"] == "error"
    assert tags["cell.12.error"] == "OSError: http://u:***@host/x"
    assert cell_tags("report.3", _run("interrupted"))["report.3.status"] == "interrupted"


def test_a_loop_of_blocks_in_one_cell_tags_its_first_and_last_step() -> None:
    run = None
    for step in range(4):
        report = dataclasses.replace(timing_report(label="step"), cell=3)
        run = fold(run, report, step=("timed.step", 10 + step))
    assert run is not None
    assert cell_tags("cell.3", run)["cell.3.steps"] == "timed.step 10-13"


def test_outside_ipython_only_a_failed_report_is_tagged() -> None:
    # A script's loop of 10,000 blocks would otherwise put 30,000 tags on its run.
    assert cell_tags("report.1", fold(None, timing_report())) == {}
    failed = fold(None, timing_report(status="error"), step=("timed.train", 0))
    assert cell_tags("report.2", failed) == {
        "report.2.status": "error",
        "report.2.error": "ValueError: bad",
        "report.2.label": "train",
        "report.2.steps": "timed.train 0",
    }
