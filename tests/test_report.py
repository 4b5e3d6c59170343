"""Reports: their dict and one-line forms, statuses, the bounded history and the bus."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from resmagic import report
from resmagic.config import settings
from resmagic.report import (
    DeviceReport,
    GpuReport,
    LogReport,
    Report,
    TimingReport,
    TransactionReport,
    describe_error,
    history,
    history_frame,
    publish,
    status_of,
    subscribe,
)
from tests.reports import host_row

pytestmark = pytest.mark.usefixtures("fresh_history")

MiB = 1 << 20
BASE: dict[str, Any] = {"duration_s": 1.5, "started_at": 1700000000.0}


def _gpu() -> GpuReport:
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


def _timing(label: str | None = "train", status: str = "ok") -> TimingReport:
    error = None if status == "ok" else "ValueError: bad"
    return TimingReport(
        status=status,  # type: ignore[arg-type]
        error=error,
        **BASE,
        label=label,
        wall_s=1.5,
        cpu_s=0.25,
    )


@pytest.fixture
def sink() -> Iterator[list[Report]]:
    got: list[Report] = []
    unsubscribe = subscribe(got.append)
    yield got
    unsubscribe()


class TestForms:
    def test_to_dict_puts_scope_first_and_is_json_ready(self) -> None:
        for r in (_gpu(), _timing(), LogReport(status="ok", **BASE), _transaction()):
            data = r.to_dict()
            assert next(iter(data)) == "scope"
            assert data["scope"] == r.scope
            assert json.loads(json.dumps(data))["status"] == "ok"  # plain JSON types only

    def test_gpu_report_to_dict_nests_device_rows(self) -> None:
        data = _gpu().to_dict()
        assert data["scope"] == "gpu_scope"
        assert data["devices"][0] == {
            "name": "host",
            "source": "RSS",
            "before_bytes": 100 * MiB,
            "peak_bytes": 300 * MiB,
            "after_bytes": 110 * MiB,
            "total_bytes": 8 << 30,
            "peak_exact": True,
            "reserved_bytes": None,
        }
        assert len(data["devices"]) == 2
        assert list(data["notes"]) == ["a", "b"]

    def test_gpu_summary_names_each_device_its_source_and_peak_kind(self) -> None:
        assert _gpu().summary() == (
            "gpu_scope  host 100 MiB → 110 MiB (peak 300 MiB, exact)"
            "  cuda:0 (NVML) 1.00 MiB → 1.00 MiB (peak 2.00 MiB, sampled)  1.5 s"
        )

    def test_device_delta_and_lookup_by_name_and_source(self) -> None:
        gpu = _gpu()
        assert gpu.device("host").delta_bytes == 10 * MiB
        assert gpu.device("cuda:0", "NVML").peak_exact is False
        with pytest.raises(KeyError, match=r"no device 'cuda:1'.*\['host', 'cuda:0'\]"):
            gpu.device("cuda:1")

    def test_timing_summary(self) -> None:
        assert _timing().summary() == "timed  train  wall 1.5 s  cpu 250 ms"
        synced = TimingReport(status="ok", **BASE, wall_s=2.0, cpu_s=1.0, cuda_synced=True)
        assert synced.summary() == "timed  wall 2 s  cpu 1 s  (CUDA synchronised)"

    def test_summary_of_a_failed_scope_says_status_and_error(self) -> None:
        assert _timing(status="error").summary().endswith("  [error: ValueError: bad]")
        stopped = TimingReport(status="interrupted", **BASE)
        assert stopped.summary().endswith("  [interrupted]")

    def test_log_summary_counts_records(self) -> None:
        one = LogReport(status="ok", **BASE, path="run.log", run_id="r1", records=1)
        assert one.summary() == "experiment_log  run.log  1 record  run r1  1.5 s"
        many = LogReport(status="ok", **BASE, path="run.log", run_id="r1", records=3)
        assert "3 records" in many.summary()

    def test_transaction_summary_committed_or_rolled_back(self) -> None:
        assert _transaction().summary() == "db_transaction  a.db  committed 2 changes  1.5 s"
        single = TransactionReport(status="ok", **BASE, path="a.db", committed=True, changes=1)
        assert "committed 1 change " in single.summary()
        failed = TransactionReport(status="error", error="KeyError: 'x'", **BASE, path="a.db")
        assert failed.summary() == (
            "db_transaction  a.db  rolled back  1.5 s  [error: KeyError: 'x']"
        )

    def test_reports_are_frozen(self) -> None:
        with pytest.raises(AttributeError):
            _timing().status = "error"  # type: ignore[misc]


def _transaction() -> TransactionReport:
    return TransactionReport(status="ok", **BASE, path="a.db", committed=True, changes=2)


class TestStatusAndError:
    @pytest.mark.parametrize(
        ("exc", "status"),
        [
            (None, "ok"),
            (KeyboardInterrupt(), "interrupted"),
            (asyncio.CancelledError(), "interrupted"),
            (ValueError("x"), "error"),
            (MemoryError(), "error"),
            (SystemExit(3), "error"),
        ],
    )
    def test_status_of(self, exc: BaseException | None, status: str) -> None:
        assert status_of(exc) == status

    def test_describe_error_is_type_and_first_line(self) -> None:
        assert describe_error(None) is None
        assert describe_error(ZeroDivisionError("division by zero")) == (
            "ZeroDivisionError: division by zero"
        )
        assert describe_error(ValueError("\n  first\nsecond")) == "ValueError: first"
        assert describe_error(KeyboardInterrupt()) == "KeyboardInterrupt"

    def test_describe_error_truncates_to_200_chars(self) -> None:
        text = describe_error(RuntimeError("x" * 500))
        assert text is not None
        assert len(text) == 200
        assert text.startswith("RuntimeError: xxx")
        assert text.endswith("x…")
        exact = "y" * (200 - len("RuntimeError: "))
        assert describe_error(RuntimeError(exact)) == f"RuntimeError: {exact}"


class TestHistory:
    def test_history_keeps_order(self) -> None:
        for i in range(5):
            publish(_timing(label=str(i)))
        assert [r.label for r in history()] == ["0", "1", "2", "3", "4"]  # type: ignore[attr-defined]

    def test_history_bounded_by_history_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(settings, "history_limit", 5)
        for i in range(12):
            publish(_timing(label=str(i)))
        assert [r.label for r in history()] == ["7", "8", "9", "10", "11"]  # type: ignore[attr-defined]

    def test_lowering_history_limit_bounds_history_at_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "history_limit", 100)
        for i in range(10):
            publish(_timing(label=str(i)))
        settings.update(history_limit=3)
        assert [r.label for r in history()] == ["7", "8", "9"]  # type: ignore[attr-defined]

    def test_clear_history(self) -> None:
        publish(_timing())
        report.clear_history()
        assert history() == []

    def test_history_returns_a_copy(self) -> None:
        publish(_timing())
        history().clear()
        assert len(history()) == 1

    def test_history_frame_has_tidy_columns(self) -> None:
        pytest.importorskip("pandas")
        publish(_gpu())
        publish(_timing())
        frame = history_frame()
        assert list(frame["scope"]) == ["gpu_scope", "gpu_scope", "timed"]
        assert list(frame["device"][:2]) == ["host", "cuda:0"]
        assert frame["device"].isna().tolist() == [False, False, True]
        assert list(frame["peak_bytes"][:2]) == [300 * MiB, 2 * MiB]
        assert frame["notes"][0] == "a; b"
        assert frame["label"][2] == "train"
        for column in ("status", "duration_s", "started_at", "source", "before_bytes"):
            assert column in frame.columns
        assert "devices" not in frame.columns
        assert "name" not in frame.columns  # the device name is the "device" column

    def test_history_frame_of_an_empty_history_is_empty(self) -> None:
        pytest.importorskip("pandas")
        assert len(history_frame()) == 0


class TestBus:
    def test_subscriber_gets_each_report_until_it_unsubscribes(self) -> None:
        got: list[Report] = []
        unsubscribe = subscribe(got.append)
        first = _timing(label="first")
        publish(first)
        unsubscribe()
        publish(_timing(label="second"))
        unsubscribe()  # twice is harmless
        assert got == [first]
        assert len(history()) == 2

    def test_failing_subscriber_warns_and_others_still_get_the_report(
        self, sink: list[Report]
    ) -> None:
        def broken(_: Report) -> None:
            raise RuntimeError("sink down")

        unsubscribe = subscribe(broken)
        try:
            with pytest.warns(RuntimeWarning, match="a report sink failed.*sink down"):
                publish(_timing())
        finally:
            unsubscribe()
        assert len(sink) == 1
        assert len(history()) == 1

    def test_subscriber_may_unsubscribe_itself_while_called(self, sink: list[Report]) -> None:
        calls: list[Report] = []

        def once(r: Report) -> None:
            calls.append(r)
            unsubscribe()

        unsubscribe = subscribe(once)
        publish(_timing())
        publish(_timing())
        assert len(calls) == 1
        assert len(sink) == 2

    def test_publish_from_eight_threads_loses_nothing(
        self, sink: list[Report], in_threads: Any
    ) -> None:
        per_thread = 500

        def work(t: int) -> None:
            for i in range(per_thread):
                publish(_timing(label=f"{t}:{i}"))

        in_threads(work, 8)
        labels = [r.label for r in history()]  # type: ignore[attr-defined]
        assert len(labels) == len(sink) == 8 * per_thread
        assert len(set(labels)) == 8 * per_thread
        for t in range(8):  # each thread's reports keep their order
            mine = [int(x.split(":")[1]) for x in labels if x.startswith(f"{t}:")]
            assert mine == list(range(per_thread))


def test_cell_provider_stamps_the_cell_number() -> None:
    previous = report._cell_provider
    report.set_cell_provider(lambda: 7)
    try:
        assert report.current_cell() == 7
    finally:
        report.set_cell_provider(previous)
    report.set_cell_provider(None)
    try:
        assert report.current_cell() is None
    finally:
        report.set_cell_provider(previous)


def test_history_frame_without_pandas_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # what a missing package looks like
    with pytest.raises(ImportError, match="pip install pandas"):
        history_frame()
