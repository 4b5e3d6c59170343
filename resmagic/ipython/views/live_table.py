"""``%resmagic panel``: the session's reports as one table that updates itself as cells run.

It is a plain HTML display with a display id, not a widget: every new report, and every cell
that starts or ends, replaces it with an ``update_display_data`` (JupyterLab, Notebook 7 and
nbclient apply those to an output of an earlier cell too). So it is the same table as
``%resmagic history``, it shows which cell runs now, and after a kernel restart the saved
notebook still shows its last state instead of "model not found".
"""

from __future__ import annotations

import html
import time
import uuid
from collections.abc import Callable
from typing import Any

from IPython.display import display

from resmagic.bus import history, subscribe
from resmagic.ipython.views.output import MARK
from resmagic.ipython.views.text import HistoryTable
from resmagic.ipython.which_cell import running_cell
from resmagic.report import Report

__all__ = ["LiveTable", "live_table"]


class LiveTable:
    """The process's one live table of reports; :meth:`show` may be called in many cells."""

    rows = 20
    """How many of the newest reports it lists."""

    def __init__(self) -> None:
        self._id = uuid.uuid4().hex
        self._shell: Any = None
        self._unsubscribe: Callable[[], None] | None = None
        self._running: tuple[int | None, float] | None = None

    @property
    def live(self) -> bool:
        """True while shown and following the session."""
        return self._unsubscribe is not None

    def show(self, shell: Any) -> None:
        """Display the table here; every view of it updates from now on."""
        if self._unsubscribe is None:
            self._shell = shell
            self._unsubscribe = subscribe(self._published)
            shell.events.register("pre_run_cell", self._started)
            shell.events.register("post_run_cell", self._ended)
        display(self._bundle(), raw=True, display_id=self._id, metadata=MARK)

    def close(self) -> None:
        """Stop updating (``%unload_ext``); the views keep their last state."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is None:
            return
        unsubscribe()
        for event, callback in (("pre_run_cell", self._started), ("post_run_cell", self._ended)):
            if callback in self._shell.events.callbacks[event]:
                self._shell.events.unregister(event, callback)
        self._shell, self._running = None, None

    def _published(self, report: Report) -> None:
        self._update()

    def _started(self, info: Any) -> None:
        self._running = (running_cell(self._shell), time.time())
        self._update()

    def _ended(self, result: Any) -> None:
        self._running = None
        self._update()

    def _update(self) -> None:
        if self._unsubscribe is not None:
            display(self._bundle(), raw=True, display_id=self._id, update=True, metadata=MARK)

    def _bundle(self) -> dict[str, str]:
        reports = history()
        shown = HistoryTable(reports[-self.rows :])
        n = len(reports)
        head = f"resmagic session: {n} report{'s' * (n != 1)}"
        if n > self.rows:
            head += f", the newest {self.rows} below"
        now = self._now()
        body = shown._repr_html_() if shown.rows else "<i>no reports yet</i>"
        markup = (
            f"<div class='rm-dashboard'><b>{html.escape(head)}</b>"
            f"<div class='rm-running'>{html.escape(now)}</div>{body}</div>"
        )
        text = "\n".join(line for line in (head, now, repr(shown) if shown.rows else "") if line)
        return {"text/html": markup, "text/plain": text}

    def _now(self) -> str:
        running = self._running
        if running is None:
            return "idle: no cell running"
        cell, since = running
        started = time.strftime("%H:%M:%S", time.localtime(since))
        return f"running: cell {cell if cell is not None else '?'}, since {started}"


live_table = LiveTable()
"""The process's one live table."""
