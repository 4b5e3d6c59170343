"""Which notebook cell each report came from, noted as it is published, for the sink thread.

A report carries its cell's number (``In [12]``), not the cell's id: the id is in the
execute request Jupyter sent (``cellId``), which only the IPython layer sees, through the
recorder's :attr:`~resmagic.store.recorder.Recorder.context` while the cell runs. The sink
thread sends later, when that cell is over, so the id is noted on the publishing thread:
one bus subscriber, a lock and a dict entry per report while a sink runs, nothing else.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from resmagic import bus
from resmagic.report import Report

__all__ = ["CellIds", "recorded_cell"]

KEEP = 4000  # notes kept at most: the runner's queue holds 1000; dropped reports' notes go


def recorded_cell() -> object | None:
    """The running cell as the recorder knows it (a ``CellRun``, with ``cell_id``), if any."""
    from resmagic.store.recorder import recorder

    return recorder.context()


class CellIds:
    """Notes each published report's cell id; :meth:`of` hands it to the sink thread.

    Args:
        context: returns the running cell (anything with a ``cell_id``) or None; called on
            the publishing thread, once per report.
    """

    def __init__(self, context: Callable[[], object | None] = recorded_cell) -> None:
        self._context = context
        self._cond = threading.Condition()
        self._notes: OrderedDict[int, tuple[Report, str | None]] = OrderedDict()
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        """Note every report published from now on (before the runner queues it, if first)."""
        if self._unsubscribe is None:
            self._unsubscribe = bus.subscribe(self._note)

    def stop(self) -> None:
        """Stop noting and forget what was noted."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        with self._cond:
            self._notes.clear()
            self._cond.notify_all()

    def _note(self, report: Report) -> None:
        try:
            cell_id = getattr(self._context(), "cell_id", None)
        except Exception:  # a cell id is a nicety: never a warning on every report
            cell_id = None
        with self._cond:
            # The report is kept with its note: its id() is not reused while it is here.
            self._notes[id(report)] = (report, cell_id if isinstance(cell_id, str) else None)
            while len(self._notes) > KEEP:
                self._notes.popitem(last=False)
            self._cond.notify_all()

    def of(self, report: Report, deadline: float) -> str | None:
        """``report``'s cell id (None: none, or not noted by ``deadline``, a monotonic time).

        The note is normally there already: the sink subscribes before the runner does, and
        the bus calls its subscribers in order. Waiting covers the other order, where the
        sink thread could take a report before the publisher has noted it.
        """
        with self._cond:
            self._cond.wait_for(
                lambda: id(report) in self._notes or self._unsubscribe is None,
                max(deadline - time.monotonic(), 0),
            )
            noted = self._notes.pop(id(report), None)
        return noted[1] if noted is not None and noted[0] is report else None
