"""What a report becomes in a tracker: metric names MLflow accepts, numbers only, status tags."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_metric_name

from resmagic.report import (
    DeviceReport,
    GpuReport,
    LogReport,
    Status,
    TimingReport,
    TransactionReport,
)
from resmagic.sinks.metrics import clean_name, metrics_of, status_tags
from tests.reports import BASE, MiB, gpu_report, host_row, timing_report


def _valid_for_mlflow(name: str) -> bool:
    try:
        _validate_metric_name(name)
    except MlflowException:
        return False
    return True


def test_gpu_scope_has_a_metric_per_device_and_field() -> None:
    metrics = metrics_of(gpu_report())
    assert metrics == {
        "gpu_scope.duration_s": 1.5,
        "gpu_scope.host.before_bytes": 100 * MiB,
        "gpu_scope.host.peak_bytes": 300 * MiB,
        "gpu_scope.host.after_bytes": 110 * MiB,
        "gpu_scope.host.total_bytes": 8 << 30,
        "gpu_scope.cuda:0.nvml.before_bytes": MiB,
        "gpu_scope.cuda:0.nvml.peak_bytes": 2 * MiB,
        "gpu_scope.cuda:0.nvml.after_bytes": MiB,
        "gpu_scope.cuda:0.nvml.total_bytes": 16 << 30,
    }


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
    metrics = metrics_of(GpuReport(status="ok", **BASE, devices=(host_row(), row)))
    assert metrics["gpu_scope.cuda:1.peak_bytes"] == 5 * MiB
    assert metrics["gpu_scope.cuda:1.reserved_bytes"] == 2 * MiB
    assert "gpu_scope.cuda:1.total_bytes" not in metrics  # unknown is left out, not 0


def test_timed_is_named_by_its_label_with_wall_and_cpu_seconds() -> None:
    assert metrics_of(timing_report(label="train")) == {
        "timed.train.wall_s": 1.5,
        "timed.train.cpu_s": 0.25,
    }
    assert set(metrics_of(timing_report(label=None))) == {"timed.wall_s", "timed.cpu_s"}


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


def _in_cell(cell: int, status: Status) -> TimingReport:
    return dataclasses.replace(timing_report(status=status), cell=cell)


def test_failed_and_interrupted_cells_are_tagged_ok_ones_are_not() -> None:
    assert status_tags(_in_cell(12, "error"), 12) == {
        "cell.12.status": "error",
        "cell.12.error": "ValueError: bad",
    }
    assert status_tags(_in_cell(3, "interrupted"), 3)["cell.3.status"] == "interrupted"
    assert status_tags(_in_cell(4, "ok"), 4) == {}


def test_outside_a_cell_the_tags_count_reports() -> None:
    assert status_tags(timing_report(status="error"), 2) == {
        "report.2.status": "error",
        "report.2.error": "ValueError: bad",
    }
