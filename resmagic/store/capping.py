"""A cell's share of the run store: its first ``store_per_cell`` reports of each scope and label.

A loop of blocks (``with timed("step")`` in a training loop) reports once per block. Stored a
row each, 100,000 steps would fill the store to its limit, and the trim would drop every
other cell's rows. So a cell run stores its first ``settings.store_per_cell`` reports of each
scope and label (the store's label column: a label, else a log's or database's path); the
measured cell's own reports are always stored. The rest still reach ``history()`` and the
sinks (and, for ``timed``, ``timings()``). The first one past the cap is said once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from resmagic.config import settings
from resmagic.store.rows import label_of
from resmagic.store.telling import tell

if TYPE_CHECKING:
    from resmagic.report import Report
    from resmagic.store.rows import CellRun

__all__ = ["Cap"]

_KEYS_MAX = 4096  # labels counted per run before its counts start over (a label per block)


class Cap:
    """Counts each cell run's stored reports per scope and label; says the first one past."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.past = 0
        """Reports not stored: past ``settings.store_per_cell`` in their cell run."""
        self._script: dict[tuple[str, str | None], int] = {}  # no cell (a script): per process

    def keeps(self, report: Report, run: CellRun | None, say: Callable[[str], None] | None) -> bool:
        """True if the store takes ``report`` (counted); False past its run's cap (said once).

        ``say``: how the IPython layer says it; None (a script): a ``RuntimeWarning``.
        Threads reporting into one run at once may store a report or two past the cap.
        """
        kept = run.kept if run is not None else self._script
        key = (report.scope, label_of(report))
        n = kept.get(key, 0)
        if n < settings.store_per_cell:
            if not n and len(kept) >= _KEYS_MAX:
                kept.clear()  # a label per block: bounded memory; every count starts over
            kept[key] = n + 1
            return True
        if run is not None and any(scope.report is report for scope in run.own):
            return True  # the measured cell's own (its body reported as much under its label)
        with self._lock:
            self.past += 1
            first = self.past == 1
        if first:
            tell(_past_text(key, script=say is None), say)
        return False


def _past_text(key: tuple[str, str | None], *, script: bool) -> str:
    scope, label = key
    limit = settings.store_per_cell
    name = f"{scope} {label!r}" if label else scope
    where, whose = ("in this script", "its") if script else ("in one cell", "a cell's")
    rest = "timings() still counts every one, and " if scope == "timed" else ""
    setting = "store_per_cell=N"
    more = f"resmagic.settings.update({setting})" if script else f"%resmagic config {setting}"
    return (
        f"{name} ran more than {limit} times {where}: the run store keeps {whose} first {limit}"
        f" reports of each scope and label; {rest}history() and any sink still get them"
        f" ({more} to store more)"
    )
