"""Sinks for the runner's tests: real objects on the real sink thread, no tracker behind them."""

from __future__ import annotations

import threading

from resmagic.report import Report


class Recording:
    """Keeps every report it is sent, and whether it was closed."""

    name = "recording"

    def __init__(self) -> None:
        self.got: list[Report] = []
        self.closed = False
        self.threads: set[str] = set()

    def send(self, report: Report) -> None:
        self.threads.add(threading.current_thread().name)
        self.got.append(report)

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

    def send(self, report: Report) -> None:
        self.entered.set()
        assert self.release.wait(60), "the test never released the blocking sink"
        super().send(report)


class Failing(Recording):
    """Raises on every report, as a tracker that is down does."""

    name = "failing"

    def send(self, report: Report) -> None:
        msg = "tracker unreachable"
        raise ConnectionError(msg)
