"""Sinks for the runner's tests: real objects on the real sink thread, no tracker behind them."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from resmagic.report import Report
from resmagic.sinks.base import PartlySentError


class Recording:
    """Keeps every report it is sent, and whether it was closed."""

    name = "recording"

    def __init__(self) -> None:
        self.got: list[Report] = []
        self.batches: list[int] = []  # how many reports each send had
        self.closed = False
        self.threads: set[str] = set()

    def send(self, reports: Sequence[Report]) -> None:
        self.threads.add(threading.current_thread().name)
        self.got += reports
        self.batches.append(len(reports))

    def close(self) -> None:
        self.closed = True

    def describe(self) -> str:
        return f"{len(self.got)} kept"


class Blocking(Recording):
    """Holds the sink thread in ``send`` until :attr:`release` is set (a tracker that hangs)."""

    name = "blocking"

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, reports: Sequence[Report]) -> None:
        self.entered.set()
        assert self.release.wait(60), "the test never released the blocking sink"
        super().send(reports)


class Failing(Recording):
    """Raises on every report, as a tracker that is down does."""

    name = "failing"

    def send(self, reports: Sequence[Report]) -> None:
        msg = "tracker unreachable"
        raise ConnectionError(msg)


class Partial(Recording):
    """Delivers every report but one file of each send (a log file gone before its upload)."""

    name = "partial"

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    def send(self, reports: Sequence[Report]) -> None:
        super().send(reports)
        self.refused += 1
        raise PartlySentError(1, OSError("log file gone"))
