"""Which notebook cell each report came from, noted as it is published, for the sink thread.

A report carries its cell's number (``In [12]``), not the cell's id: the id is in the
execute request Jupyter sent (``cellId``), which only the IPython layer sees, through the
bus's cell-id slot (:func:`resmagic.bus.current_cell_id`) while the cell runs. The sink
thread sends later, when that cell is over, so the id is noted on the publishing thread,
once per cell: the first report of a cell asks the slot (a few µs: the IPython layer reads
the kernel's request), every later one of the same cell costs a comparison.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from resmagic import bus
from resmagic.report import Report

__all__ = ["CellIds"]

KEEP = 4000  # cells remembered: far more than the runner's queue (1000 reports) can span


class CellIds:
    """Notes each cell's id as its first report is published; :meth:`of` reads it later.

    Args:
        cell_id: returns the running cell's id or None; called on the publishing thread,
            once per cell. Default: the bus's slot, which the IPython layer fills.
    """

    def __init__(self, cell_id: Callable[[], str | None] | None = None) -> None:
        self._cell_id = cell_id if cell_id is not None else bus.current_cell_id
        self._cond = threading.Condition()
        self._ids: OrderedDict[int, str | None] = OrderedDict()  # cell number → its id
        self._last: int | None = None  # the number noted last: its later reports are free
        self._waiting = 0
        self._unsubscribe: Callable[[], None] | None = None
        self._pid = os.getpid()

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
            self._ids.clear()
            self._last = None
            self._cond.notify_all()

    def _note(self, report: Report) -> None:
        number = report.cell
        if number is None or number == self._last:
            return  # outside IPython, or a cell already noted: the hot path of a loop
        if os.getpid() != self._pid:
            # A forked child (a DataLoader worker) sends nothing to this sink, and its copy
            # of the lock may have been held by the sink thread at the fork: never touch it.
            return
        try:
            cell_id = self._cell_id()
        except Exception:  # a cell id is a nicety: never a warning on every report
            cell_id = None
        with self._cond:
            self._ids[number] = cell_id if isinstance(cell_id, str) else None
            self._last = number
            while len(self._ids) > KEEP:
                self._ids.popitem(last=False)
            if self._waiting:
                self._cond.notify_all()

    def of(self, report: Report, deadline: float) -> str | None:
        """The id of ``report``'s cell (None: none, or not noted by ``deadline``, monotonic).

        The note is normally there already: the sink subscribes before the runner does, and
        the bus calls its subscribers in order. Waiting covers the other order, where the
        sink thread could take a report before its publisher has noted it.
        """
        number = report.cell
        if number is None:
            return None
        with self._cond:
            if number not in self._ids and self._unsubscribe is not None:
                self._waiting += 1
                try:
                    self._cond.wait_for(
                        lambda: number in self._ids or self._unsubscribe is None,
                        max(deadline - time.monotonic(), 0),
                    )
                finally:
                    self._waiting -= 1
            return self._ids.get(number)
