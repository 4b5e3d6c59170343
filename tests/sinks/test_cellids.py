"""Cell ids noted on the publishing thread, once per cell, read by the sink thread later."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from resmagic import bus
from resmagic.report import TimingReport
from resmagic.sinks.cellids import KEEP, CellIds
from tests.reports import timing_report

pytestmark = pytest.mark.usefixtures("fresh_history")


class Running:
    """Which cell is running, as the IPython layer tells the bus's slot; counts the asks."""

    def __init__(self) -> None:
        self.cell_id: str | None = None
        self.asked = 0

    def __call__(self) -> str | None:
        self.asked += 1
        return self.cell_id

    def enter(self, cell_id: str | None) -> None:
        self.cell_id = cell_id


@pytest.fixture
def running() -> Running:
    return Running()


@pytest.fixture
def ids(running: Running) -> Iterator[CellIds]:
    ids = CellIds(running)
    ids.start()
    yield ids
    ids.stop()


def _in(cell: int | None) -> TimingReport:
    return dataclasses.replace(timing_report(), cell=cell)


def _soon() -> float:
    return time.monotonic() + 30


def _asked_on_another_thread(ids: CellIds, reports: list[TimingReport]) -> list[str | None]:
    got: list[str | None] = []
    asker = threading.Thread(target=lambda: got.extend(ids.of(r, _soon()) for r in reports))
    asker.start()
    asker.join(30)
    return got


def test_each_report_gets_the_id_of_the_cell_it_was_published_in(
    ids: CellIds, running: Running
) -> None:
    reports = []
    for cell_id, number in (("first", 1), (None, 2), ("third", 3)):
        running.enter(cell_id)
        for _ in range(3):
            reports.append(_in(number))
            bus.publish(reports[-1])
    running.cell_id = None  # the cells are over when the sink thread asks
    assert _asked_on_another_thread(ids, reports) == ["first"] * 3 + [None] * 3 + ["third"] * 3
    assert running.asked == 3  # once per cell: a loop of blocks in one cell asks once


def test_a_report_noted_after_the_sink_thread_asked_is_still_found(
    ids: CellIds, running: Running
) -> None:
    # The other subscriber order: the runner queued the report first, and the sink thread
    # asks before the publisher got to the note.
    report = _in(4)
    got: list[str | None] = []
    asker = threading.Thread(target=lambda: got.append(ids.of(report, _soon())))
    asker.start()
    running.enter("late")
    bus.publish(report)
    asker.join(30)
    assert got == ["late"]


def test_a_cell_never_noted_has_no_id_at_the_deadline_and_a_script_none_at_once(
    ids: CellIds,
) -> None:
    assert ids.of(_in(9), time.monotonic() + 0.05) is None
    assert ids.of(_in(None), _soon()) is None  # returns at once: no cell, no id to wait for


def test_a_context_that_raises_gives_no_id_and_no_warning() -> None:
    def broken() -> str | None:
        raise RuntimeError("no shell")

    ids = CellIds(broken)
    ids.start()
    try:
        report = _in(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            bus.publish(report)
        assert ids.of(report, _soon()) is None
    finally:
        ids.stop()


def test_stop_unsubscribes_and_forgets(ids: CellIds, running: Running) -> None:
    running.enter("x")
    report = _in(1)
    bus.publish(report)
    ids.stop()
    assert ids._note not in bus._subscribers
    assert ids.of(report, _soon()) is None  # returns at once: nothing will be noted


def test_the_cells_remembered_are_bounded(ids: CellIds, running: Running) -> None:
    for number in range(KEEP + 50):
        running.enter(f"id-{number}")
        bus.publish(_in(number))
    assert len(ids._ids) == KEEP
    assert ids.of(_in(KEEP + 49), _soon()) == f"id-{KEEP + 49}"


def test_a_forked_child_publishing_never_waits_on_the_lock_it_copied() -> None:
    # A DataLoader worker forked while the sink thread held the lock (reading an id) gets
    # that lock held forever; a report of a new cell in the child must not wait on it.
    script = textwrap.dedent(
        """
        import dataclasses, os, sys, threading, time
        from resmagic import bus
        from resmagic.sinks.cellids import CellIds
        from tests.reports import timing_report

        ids = CellIds(lambda: None)
        ids.start()
        held, release = threading.Event(), threading.Event()

        def hold():
            with ids._cond:
                held.set()
                release.wait()

        threading.Thread(target=hold, daemon=True).start()
        held.wait()
        pid = os.fork()
        if pid == 0:
            bus.publish(dataclasses.replace(timing_report(), cell=5))
            os._exit(0)
        release.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                sys.exit(os.waitstatus_to_exitcode(status))
            time.sleep(0.05)
        os.kill(pid, 9)
        sys.exit("the child hung on the lock it copied")
        """
    )
    root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
