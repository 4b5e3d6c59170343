"""``%resmagic runs``: the run store's last rows as a table, with the session they came from."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

from resmagic.ipython.views.text import HistoryTable, memory_cell, one_row_per_cell
from resmagic.store.query import Stored
from resmagic.units import format_seconds

__all__ = ["RunsTable"]


class RunsTable(HistoryTable):
    """Stored reports of every session, oldest first; this kernel's session says ``(this)``."""

    columns = (
        "started",
        "session",
        "notebook",
        "cell",
        "scope",
        "label",
        "status",
        "time",
        "memory (before → after, peak)",
    )
    empty = "the run store has no reports yet"

    def __init__(self, stored: Sequence[Stored], session: str | None = None) -> None:
        self.rows = one_row_per_cell([_row(s, session) for s in stored], self.columns)


def _row(s: Stored, session: str | None) -> tuple[str, ...]:
    started = dt.datetime.fromtimestamp(s["started_at"]).strftime("%Y-%m-%d %H:%M:%S")
    who = str(s["session"])[:8] + (" (this)" if s["session"] == session else "")
    notebook = os.path.basename(s["notebook"]) if s["notebook"] else ""
    cell = "" if s["cell"] is None else str(s["cell"])
    duration = s["duration_s"]
    return (
        started,
        who,
        notebook,
        cell,
        str(s["scope"]),
        str(s["label"] or ""),
        str(s["status"]),
        format_seconds(duration) if duration is not None else "",
        memory_cell(s.devices),
    )
