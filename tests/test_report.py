"""Reports: their dict and one-line forms, statuses and error texts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from resmagic.report import (
    LogReport,
    TimingReport,
    TransactionReport,
    describe_error,
    status_of,
)
from tests.reports import BASE, MiB, gpu_report, ranks_report, timing_report

pytestmark = pytest.mark.usefixtures("fresh_history")


class TestForms:
    def test_to_dict_puts_scope_first_and_is_json_ready(self) -> None:
        for r in (gpu_report(), timing_report(), LogReport(status="ok", **BASE), _transaction()):
            data = r.to_dict()
            assert next(iter(data)) == "scope"
            assert data["scope"] == r.scope
            assert json.loads(json.dumps(data))["status"] == "ok"  # plain JSON types only

    def test_to_dict_is_dataclasses_asdict_with_scope_first(self) -> None:
        # Issue 26 C1: to_dict no longer calls asdict (the store's writer paid 16 µs a report)
        from resmagic.report import Holder

        held = (Holder("x", "bytes", "host", MiB, ("y", "z")),)
        odd = {"a": [1, (2.5, None)], "b": {"c": True}}  # a list in a dict in a tuple
        reports = [
            gpu_report(),
            dataclasses.replace(gpu_report(), holders=held, holders_when="after"),
            ranks_report(0),
            ranks_report(1),
            timing_report(),
            timing_report(status="error"),
            LogReport(status="ok", **BASE, notes=("full",)),
            _transaction(),
            dataclasses.replace(timing_report(), label=odd),  # type: ignore[arg-type]
        ]
        for r in reports:
            assert list(r.to_dict().items()) == [
                ("scope", r.scope),
                *dataclasses.asdict(r).items(),
            ]
        copied = reports[-1].to_dict()["label"]
        assert copied == odd
        assert copied is not odd
        assert copied["a"] is not odd["a"]

    def test_gpu_report_to_dict_nests_device_rows(self) -> None:
        data = gpu_report().to_dict()
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
        assert gpu_report().summary() == (
            "gpu_scope  host 100 MiB → 110 MiB (peak 300 MiB, exact)"
            "  cuda:0 (NVML) 1.00 MiB → 1.00 MiB (peak 2.00 MiB, sampled)  1.5 s"
        )

    def test_device_delta_and_lookup_by_name_and_source(self) -> None:
        gpu = gpu_report()
        assert gpu.device("host").delta_bytes == 10 * MiB
        assert gpu.device("cuda:0", "NVML").peak_exact is False
        with pytest.raises(KeyError, match=r"no device 'cuda:1'.*\['host', 'cuda:0'\]"):
            gpu.device("cuda:1")

    def test_timing_summary(self) -> None:
        assert timing_report().summary() == "timed  train  wall 1.5 s  cpu 250 ms"
        synced = TimingReport(status="ok", **BASE, wall_s=2.0, cpu_s=1.0, cuda_synced=True)
        assert synced.summary() == "timed  wall 2 s  cpu 1 s  (CUDA synchronised)"

    def test_summary_of_a_failed_scope_says_status_and_error(self) -> None:
        assert timing_report(status="error").summary().endswith("  [error: ValueError: bad]")
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
            timing_report().status = "error"  # type: ignore[misc]


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

    def test_describe_error_keeps_the_start_and_the_cause_at_the_end_in_200_chars(self) -> None:
        cause = "(Caused by ResponseError('too many 500 error responses'))"
        long = f"Max retries exceeded with url: /api/2.0/mlflow/runs/log-batch{'x' * 300} {cause}"
        text = describe_error(ConnectionError(long))
        assert text is not None
        assert len(text) == 200
        assert text.startswith("ConnectionError: Max retries exceeded with url: /api/2.0/")
        assert " … " in text
        assert text.endswith(cause)
        exact = "y" * (200 - len("RuntimeError: "))
        assert describe_error(RuntimeError(exact)) == f"RuntimeError: {exact}"


def test_timing_report_builds_the_same_report_as_the_dataclass() -> None:
    from resmagic.report import TimingReport
    from resmagic.report_makers import timing_report as build

    fields: tuple[Any, ...] = ("error", 1.5, 1.7e9, 7, "ValueError: x", "step", 1.5, 0.25, True)
    names: tuple[str, ...] = ("status", "duration_s", "started_at", "cell", "error", "label")
    names += ("wall_s", "cpu_s", "cuda_synced")
    made = build(*fields)
    kwargs: dict[str, Any] = dict(zip(names, fields, strict=True))
    expected = TimingReport(**kwargs)
    assert made == expected
    assert made.to_dict() == expected.to_dict()
    assert hash(made) == hash(expected)
    # Every field the builder does not take keeps its default (ranks: None until gathered).
    rest = [f for f in dataclasses.fields(TimingReport) if f.name not in names]
    assert [f.name for f in dataclasses.fields(TimingReport)][: len(names)] == list(names)
    assert [(f.name, getattr(made, f.name)) for f in rest] == [(f.name, f.default) for f in rest]


def test_device_report_builds_the_same_row_as_the_dataclass() -> None:
    from resmagic.report import DeviceReport
    from resmagic.report_makers import device_report

    fields: tuple[Any, ...] = ("cuda:0", "torch allocator", 1, 5, 2, 80, True, 3)
    names = [f.name for f in dataclasses.fields(DeviceReport)]
    made = device_report(*fields)
    expected = DeviceReport(**dict(zip(names, fields, strict=True)))
    assert made == expected
    assert hash(made) == hash(expected)
    assert dataclasses.asdict(made) == dataclasses.asdict(expected)


def test_gpu_report_builds_the_same_report_as_the_dataclass() -> None:
    from resmagic.report import DeviceReport, GpuReport, Holder
    from resmagic.report_makers import gpu_report

    common: dict[str, Any] = {
        "status": "error",
        "duration_s": 1.5,
        "started_at": 1.7e9,
        "cell": 7,
        "error": "MemoryError: x",
    }
    row = DeviceReport(
        name="host",
        source="RSS",
        before_bytes=1,
        peak_bytes=3,
        after_bytes=2,
        total_bytes=9,
        peak_exact=True,
    )
    holders = (Holder("x", "bytes", "host", 1 << 20),)
    rest: dict[str, Any] = {
        "devices": (row,),
        "notes": ("torch allocator: torch not imported",),
        "reclaimed": True,
        "holders": holders,
        "holders_when": "error",
    }
    made = gpu_report(common, **rest)
    expected = GpuReport(**common, **rest)
    assert made == expected
    assert made.to_dict() == expected.to_dict()
    assert made.ranks is None
    assert [f.name for f in dataclasses.fields(GpuReport)] == [*common, *rest, "ranks"]
