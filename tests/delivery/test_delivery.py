"""A stop sent into a running thread lands once, at a line start of the user's own code.

Real threads: a sender thread calls send() and then rearm() every 2 ms, as the sampler does at
each sample, while the thread under test runs. Under pytest every test is itself called by a
library, so the stops name the test's frame as the block's anchor, as the guard does with the
frame of its ``with``.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType

import pytest

from resmagic import delivery
from resmagic.delivery import linetrace, pending


class StoppedError(Exception):
    pass


LIBRARY = """
swallowed = 0

def update(state):
    global swallowed
    try:
        state["text"] = " ".join(str(i) for i in range(30))
    except Exception:
        swallowed += 1
"""


@pytest.fixture(autouse=True)
def nothing_left_waiting() -> Iterator[None]:
    yield
    pending.waiting.clear()
    linetrace.disarm()


class Sender:
    """Sends a stop into ``thread`` from another thread and re-arms it until told to end."""

    def __init__(self, thread: int, anchor: FrameType | None) -> None:
        self.thread, self.anchor = thread, anchor
        self.sent = threading.Event()
        self.done = threading.Event()
        self._worker = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sender:
        self._worker.start()
        self.sent.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self._worker.join()

    def _run(self) -> None:
        delivery.send(self.thread, StoppedError, self.anchor)
        self.sent.set()
        while not self.done.wait(0.002):
            delivery.rearm(self.thread)


def _innermost(error: BaseException) -> traceback.FrameSummary:
    return traceback.extract_tb(error.__traceback__)[-1]


def _for_a_while() -> Callable[[], bool]:
    deadline = time.monotonic() + 10
    return lambda: time.monotonic() < deadline


def test_a_stop_lands_in_the_users_loop_not_in_logging(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("resmagic-test-delivery")
    log.propagate = False
    log.addHandler(logging.StreamHandler(io.StringIO()))
    block, going = sys._getframe(), _for_a_while()
    with pytest.raises(StoppedError) as stopped, Sender(threading.get_ident(), block):  # noqa: PT012
        while going():
            log.warning("step %d loss %f", 1, 0.5)
    where = _innermost(stopped.value)
    # Raised at a line start of this function: no logging frame, no resmagic frame.
    assert (where.filename, where.name) == (__file__, sys._getframe().f_code.co_name)
    assert "Logging error" not in capsys.readouterr().err
    assert sys.gettrace() is None  # the trace went with the stop


def test_a_library_that_catches_exception_never_gets_the_stop(
    library: Callable[[str], ModuleType],
) -> None:
    progress = library(LIBRARY)
    state: dict[str, str] = {}
    block, going = sys._getframe(), _for_a_while()
    with pytest.raises(StoppedError), Sender(threading.get_ident(), block):  # noqa: PT012
        while going():
            progress.update(state)
    assert progress.swallowed == 0


def test_a_stop_waits_while_the_thread_handles_an_exception() -> None:
    block, going = sys._getframe(), _for_a_while()
    in_handler = 0
    try:
        int("not a number")
    except ValueError:
        with Sender(threading.get_ident(), block):
            for _ in range(20_000):
                in_handler += 1  # lines of an except block: the stop waits
        assert delivery.waiting(threading.get_ident())
    with pytest.raises(StoppedError):  # noqa: PT012
        while going():
            in_handler += 0
    assert in_handler == 20_000


def test_a_withdrawn_stop_is_never_raised() -> None:
    block, thread = sys._getframe(), threading.get_ident()
    try:
        int("not a number")
    except ValueError:
        with Sender(thread, block):
            delivery.withdraw(thread, StoppedError)
    ran = sum(1 for _ in range(10_000))  # lines after the handler: nothing waits any more
    assert ran == 10_000
    assert not delivery.waiting(thread)


def test_a_stop_sent_into_another_thread_lands_there() -> None:
    caught: list[traceback.FrameSummary] = []
    started = threading.Event()

    def loop() -> None:
        going = _for_a_while()
        anchor.append(sys._getframe())
        started.set()
        try:
            total = 0
            while going():
                total += 1
        except StoppedError as stop:
            caught.extend(traceback.extract_tb(stop.__traceback__))

    anchor: list[FrameType] = []
    worker = threading.Thread(target=loop)
    worker.start()
    started.wait()
    assert worker.ident is not None
    with Sender(worker.ident, anchor[0]):
        worker.join()
    assert "loop" in [frame.name for frame in caught]
