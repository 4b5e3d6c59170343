"""Per-label totals of timed runs, and keep="totals" making no report per run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import resmagic
from resmagic import experiment_log, timed


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    resmagic.clear_timings()
    resmagic.clear_history()
    yield
    resmagic.clear_timings()


def test_each_run_counts_toward_its_label() -> None:
    @timed("step")
    def step(fail: bool = False) -> None:
        if fail:
            raise ValueError("bad batch")

    for _ in range(5):
        step()
    with pytest.raises(ValueError, match="bad batch"):
        step(fail=True)
    totals = resmagic.timings()["step"]
    reports = [r for r in resmagic.history() if isinstance(r, resmagic.TimingReport)]
    assert totals.count == 6 == len(reports)
    assert totals.failed == 1
    assert totals.total_s == pytest.approx(sum(r.wall_s for r in reports))
    assert totals.max_s == max(r.wall_s for r in reports)
    assert totals.mean_s == pytest.approx(totals.total_s / 6)


def test_keep_totals_makes_no_reports_and_no_log_records(tmp_path: Path) -> None:
    @timed(keep="totals")
    def hot(n: int) -> int:
        return n * 2

    log = tmp_path / "run.jsonl"
    with experiment_log(str(log), fmt="jsonl"):
        for i in range(1000):
            hot(i)
    assert resmagic.timings()["hot"].count == 1000  # unlabelled: the function's name
    assert not [r for r in resmagic.history() if isinstance(r, resmagic.TimingReport)]
    assert "hot" not in log.read_text()
    assert hot.__name__ == "hot"


def test_a_decorator_without_label_names_runs_after_the_function() -> None:
    class Trainer:
        @timed()
        def epoch(self) -> None:
            pass

    Trainer().epoch()
    report = resmagic.history()[-1]
    assert isinstance(report, resmagic.TimingReport)
    assert report.label == "Trainer.epoch"


def test_bad_keep_is_refused_before_anything_runs() -> None:
    with pytest.raises(resmagic.errors.OptionError, match="keep must be 'each' or 'totals'"):
        timed(keep="some")  # type: ignore[arg-type]


def test_resmagic_timings_prints_the_table(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.run_cell("%%timed load\nx = 1", store_history=True)
    table = ip.run_line_magic("resmagic", "timings --clear")
    header = ["label", "count", "total", "mean", "max", "cpu", "failed"]
    assert repr(table).splitlines()[0].split() == header
    assert repr(table).splitlines()[1].split()[:2] == ["load", "1"]
    assert len(resmagic.timings()) == 0


def test_runs_counted_in_threads_that_ended_stay_in_the_totals() -> None:
    # Each thread counts into rows of its own (issue 26): an ended thread's rows are folded
    # into the totals when the next thread starts counting, never lost, and clearing
    # forgets them too.
    def work(label: str, n: int) -> None:
        for _ in range(n):
            with timed(label, keep="totals"):
                pass

    for round_ in range(3):
        threads = [threading.Thread(target=work, args=("pool", 50)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        work("main", 10)
        assert resmagic.timings()["pool"].count == 200 * (round_ + 1)
        assert resmagic.timings()["main"].count == 10 * (round_ + 1)
    resmagic.clear_timings()
    threading.Thread(target=work, args=("after", 1)).start()
    assert "pool" not in {row.label for row in resmagic.timings()}


def test_keep_totals_builds_the_last_report_when_read() -> None:
    scope = timed("lazy", keep="totals")
    with scope:
        pass
    with pytest.raises(ZeroDivisionError), scope:
        1 / 0  # noqa: B018
    report = scope.report
    assert isinstance(report, resmagic.TimingReport)
    assert (report.label, report.status, report.error) == (
        "lazy",
        "error",
        "ZeroDivisionError: division by zero",
    )
    assert report.wall_s == report.duration_s >= 0
    assert scope.report is report  # built once
    assert resmagic.timings()["lazy"].failed == 1
