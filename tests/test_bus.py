"""The bus: the bounded history, subscribers, per-report listeners, the cell number, frames."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from resmagic import bus
from resmagic.bus import history, history_frame, publish, subscribe
from resmagic.config import settings
from resmagic.report import Report
from tests.reports import MiB, gpu_report, timing_report

pytestmark = pytest.mark.usefixtures("fresh_history")


@pytest.fixture
def sink() -> Iterator[list[Report]]:
    got: list[Report] = []
    unsubscribe = subscribe(got.append)
    yield got
    unsubscribe()


class TestHistory:
    def test_history_keeps_order(self) -> None:
        for i in range(5):
            publish(timing_report(label=str(i)))
        assert [r.label for r in history()] == ["0", "1", "2", "3", "4"]  # type: ignore[attr-defined]

    def test_history_bounded_by_history_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(settings, "history_limit", 5)
        for i in range(12):
            publish(timing_report(label=str(i)))
        assert [r.label for r in history()] == ["7", "8", "9", "10", "11"]  # type: ignore[attr-defined]

    def test_lowering_history_limit_bounds_history_at_once(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "history_limit", 100)
        for i in range(10):
            publish(timing_report(label=str(i)))
        settings.update(history_limit=3)
        assert [r.label for r in history()] == ["7", "8", "9"]  # type: ignore[attr-defined]

    def test_clear_history(self) -> None:
        publish(timing_report())
        bus.clear_history()
        assert history() == []

    def test_history_returns_a_copy(self) -> None:
        publish(timing_report())
        history().clear()
        assert len(history()) == 1

    def test_history_frame_has_tidy_columns(self) -> None:
        pytest.importorskip("pandas")
        publish(gpu_report())
        publish(timing_report())
        frame = history_frame()
        assert list(frame["scope"]) == ["gpu_scope", "gpu_scope", "timed"]
        assert list(frame["device"][:2]) == ["host", "cuda:0"]
        assert frame["device"].isna().tolist() == [False, False, True]
        assert list(frame["peak_bytes"][:2]) == [300 * MiB, 2 * MiB]
        assert frame["notes"][0] == "a; b"
        assert frame["label"][2] == "train"
        for column in ("status", "duration_s", "started_at", "source", "before_bytes"):
            assert column in frame.columns
        assert str(frame["started_at"].dt.tz) == "UTC"
        assert frame["started_at"][0].timestamp() == 1700000000.0
        assert str(frame["peak_bytes"].dtype) == "Int64"  # bytes stay integers, with gaps
        assert frame["peak_bytes"].isna().tolist() == [False, False, True]
        assert "devices" not in frame.columns
        assert "name" not in frame.columns  # the device name is the "device" column

    def test_history_frame_of_an_empty_history_is_empty(self) -> None:
        pytest.importorskip("pandas")
        assert len(history_frame()) == 0


class TestBus:
    def test_subscriber_gets_each_report_until_it_unsubscribes(self) -> None:
        got: list[Report] = []
        unsubscribe = subscribe(got.append)
        first = timing_report(label="first")
        publish(first)
        unsubscribe()
        publish(timing_report(label="second"))
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
                publish(timing_report())
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
        publish(timing_report())
        publish(timing_report())
        assert len(calls) == 1
        assert len(sink) == 2

    def test_publish_from_eight_threads_loses_nothing(
        self, sink: list[Report], in_threads: Any
    ) -> None:
        per_thread = 500

        def work(t: int) -> None:
            for i in range(per_thread):
                publish(timing_report(label=f"{t}:{i}"))

        in_threads(work, 8)
        labels = [r.label for r in history()]  # type: ignore[attr-defined]
        assert len(labels) == len(sink) == 8 * per_thread
        assert len(set(labels)) == 8 * per_thread
        for t in range(8):  # each thread's reports keep their order
            mine = [int(x.split(":")[1]) for x in labels if x.startswith(f"{t}:")]
            assert mine == list(range(per_thread))


def test_cell_provider_stamps_the_cell_number() -> None:
    previous = bus._cell_provider
    bus.set_cell_provider(lambda: 7)
    try:
        assert bus.current_cell() == 7
    finally:
        bus.set_cell_provider(previous)
    bus.set_cell_provider(None)
    try:
        assert bus.current_cell() is None
    finally:
        bus.set_cell_provider(previous)


def test_history_frame_without_pandas_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # what a missing package looks like
    with pytest.raises(ImportError, match="pip install pandas"):
        history_frame()
