"""``ranks=True``: a scope's report gains every rank's row before it is published (issue 28).

A scope made with ``ranks=True`` holds a :class:`Ranks`; :class:`~resmagic.scopes.base.Scope`
hands it the rank's own report once ``_close`` has built it, and publishes what comes back:
the report with its :class:`~resmagic.ranktable.RankTable`. So rank 0's wait for the others
never counts in its own wall time or peaks. Ctrl-C is held back during the wait; one that
arrives ends the wait, and the scope raises it once the report is out.

Each scope's gathers are counted under a tag: the scope's kind, its label and the line that
made it (``train.py:42``), so a scope that some ranks skip leaves the counts of the others
whole.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import TypeVar

from resmagic import ranks
from resmagic.config import settings
from resmagic.errors import OptionError
from resmagic.report import Report
from resmagic.scopes.interrupts import hold, release, state

__all__ = ["Ranks", "ranks_of"]

R = TypeVar("R", bound=Report)

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True, slots=True)
class Ranks:
    """How one scope gathers its ranks' rows: the wait's timeout and the keys' tag.

    Attributes:
        timeout_s: how long rank 0 waits for the others; None: ``settings.ranks_timeout_s``.
        tag: the scope's kind, label and the line that made it, e.g. ``timed/train/a.py:7``.
    """

    timeout_s: float | None
    tag: str

    def gather(self, report: R) -> R:
        """``report`` with every rank's row (rank 0) or its own; unchanged without a group."""
        held = hold()
        try:
            table = ranks.gather(
                ranks.record_of(report),
                timeout_s=self.timeout_s or settings.ranks_timeout_s,
                tag=self.tag,
                stop=_noted,
            )
        finally:
            try:
                release(held)
            except KeyboardInterrupt:  # arrived as the handler went back: raise it after
                _note()
        if table is None:
            return report
        if table.interrupted:
            _note()  # a Ctrl-C the handler let through: raised once the report is out
        return replace(report, ranks=table)  # type: ignore[call-arg]  # Gpu/TimingReport


def ranks_of(ranks_on: object, timeout_s: object, kind: str, label: str | None) -> Ranks | None:
    """The :class:`Ranks` of a scope made here with ``ranks=ranks_on``; None when off.

    Raises:
        OptionError: ``ranks_on`` is not True or False, or ``timeout_s`` is not a positive
            number of seconds (or None).
    """
    if ranks_on is not True and ranks_on is not False:
        # A truth test would turn ranks="no" on; sync_cuda, keep and reclaim refuse too.
        msg = f"ranks must be True or False, not {ranks_on!r}"
        raise OptionError(msg)
    if timeout_s is not None:
        timeout_s = ranks.check_timeout(timeout_s)
    if not ranks_on:
        return None
    return Ranks(timeout_s, f"{kind}/{label or ''}/{_call_site()}")


def _call_site() -> str:
    """``file.py:42`` of the first frame outside resmagic: where the scope was made."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"


def _noted() -> bool:
    return state.noted_at is not None


def _note() -> None:
    # Only the main thread receives signals; the protected __exit__ around the gather
    # raises a noted Ctrl-C once the report is published.
    if threading.current_thread() is threading.main_thread() and state.noted_at is None:
        state.noted_at = time.monotonic()
