"""Cell ids noted on the publishing thread, handed to the sink thread later."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from resmagic import bus
from resmagic.sinks.cellids import KEEP, CellIds
from resmagic.store.rows import CellRun
from tests.reports import timing_report

pytestmark = pytest.mark.usefixtures("fresh_history")


class Running:
    """Which cell is running, as the IPython layer tells the recorder."""

    def __init__(self) -> None:
        self.cell: CellRun | None = None

    def __call__(self) -> CellRun | None:
        return self.cell

    def enter(self, cell_id: str | None, number: int) -> None:
        self.cell = CellRun(notebook="a.ipynb", cell_id=cell_id, cell=number, code_sha=None)


@pytest.fixture
def running() -> Running:
    return Running()


@pytest.fixture
def ids(running: Running) -> Iterator[CellIds]:
    ids = CellIds(running)
    ids.start()
    yield ids
    ids.stop()


def _soon() -> float:
    return time.monotonic() + 30


def test_each_report_gets_the_id_of_the_cell_it_was_published_in(
    ids: CellIds, running: Running
) -> None:
    reports = []
    for cell_id, number in (("first", 1), (None, 2), ("third", 3)):
        running.enter(cell_id, number)
        report = timing_report()
        bus.publish(report)
        reports.append(report)
    running.cell = None  # the cells are over when the sink thread asks
    got: list[str | None] = []
    asker = threading.Thread(target=lambda: got.extend(ids.of(r, _soon()) for r in reports))
    asker.start()
    asker.join(30)
    assert got == ["first", None, "third"]
    assert ids.of(reports[0], time.monotonic()) is None  # handed over once


def test_a_report_noted_after_the_sink_thread_asked_is_still_found(
    ids: CellIds, running: Running
) -> None:
    # The other subscriber order: the runner queued the report first, and the sink thread
    # asks before the publisher got to the note.
    report = timing_report()
    got: list[str | None] = []
    asker = threading.Thread(target=lambda: got.append(ids.of(report, _soon())))
    asker.start()
    running.enter("late", 4)
    bus.publish(report)
    asker.join(30)
    assert got == ["late"]


def test_a_report_never_noted_has_no_id_at_the_deadline(ids: CellIds) -> None:
    assert ids.of(timing_report(), time.monotonic() + 0.05) is None


def test_a_context_that_raises_gives_no_id_and_no_warning() -> None:
    def broken() -> CellRun | None:
        raise RuntimeError("no shell")

    ids = CellIds(broken)
    ids.start()
    try:
        report = timing_report()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            bus.publish(report)
        assert ids.of(report, _soon()) is None
    finally:
        ids.stop()


def test_stop_unsubscribes_and_forgets(ids: CellIds, running: Running) -> None:
    running.enter("x", 1)
    report = timing_report()
    bus.publish(report)
    ids.stop()
    assert ids._note not in bus._subscribers
    assert ids.of(report, _soon()) is None  # returns at once: nothing will be noted


def test_notes_of_reports_never_asked_for_are_bounded(ids: CellIds, running: Running) -> None:
    running.enter("x", 1)
    for _ in range(KEEP + 50):  # a full sink queue drops reports: their notes must go too
        bus.publish(timing_report())
    assert len(ids._notes) == KEEP
