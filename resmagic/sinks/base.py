"""What a sink is, and the counts the sink thread keeps of each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from resmagic.report import Report

__all__ = ["PartlySentError", "Sink", "SinkFactory", "SinkState", "Slot"]


class Sink(Protocol):
    """An engine that receives reports, on the sink thread only."""

    name: str

    def send(self, reports: Sequence[Report]) -> None:
        """Deliver these reports, oldest first; raise if it could not (each counted, said once)."""

    def close(self) -> None:
        """Finish (end the run, close files); called once, after the last :meth:`send`."""

    def describe(self) -> str:
        """Where the reports go, for ``%resmagic status`` (e.g. a run id and a URI)."""


class PartlySentError(Exception):
    """A send that delivered all but ``failed`` of its reports; ``cause`` says why those not."""

    def __init__(self, failed: int, cause: Exception) -> None:
        super().__init__(f"{failed} not sent: {cause}")
        self.failed = failed
        self.cause = cause


SinkFactory = tuple[str | None, Callable[[str | None], Sink]]
"""How a sink is made: (the package it needs, looked for before it starts, or None; a
function of the notebook's path, None in a script, that returns the sink). The wiring's
table (:data:`resmagic.wiring.SINKS`) holds one per sink name."""


@dataclass(frozen=True, slots=True)
class SinkState:
    """One sink's counts, in reports.

    ``queued`` (waiting or being sent) and ``dropped`` are the sink thread's, shared by its sinks;
    ``failures`` counts the reports of sends that raised.
    """

    name: str
    where: str
    queued: int
    sent: int
    dropped: int
    failures: int
    last_error: str | None

    def summary(self) -> str:
        """``"mlflow: 12 sent, 0 queued, 0 dropped, 0 failures (run 3f2a at http://...)"``."""
        counts = (
            f"{self.sent} sent, {self.queued} queued, {self.dropped} dropped, "
            f"{self.failures} failure{'s' * (self.failures != 1)}"
        )
        where = f" ({self.where})" if self.where else ""
        last = f"; last: {self.last_error}" if self.failures and self.last_error else ""
        return f"{self.name}: {counts}{where}{last}"


class Slot:
    """A sink with its counters, as the thread sees it."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.sent = 0
        self.failures = 0
        self.last_error: str | None = None
        self.said = False
