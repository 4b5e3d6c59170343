"""The run store per measured cell: its running row, its reports' cell, and "last time".

A measured cell gets a ``running`` row while it runs (its live peak written about once a
second) and its reports when it ends; its text lines say how the same cell did last time.
The store's start at load and its death notices are :mod:`resmagic.ipython.storestart`'s.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from resmagic.config import settings
from resmagic.ipython.cells.runner import Frame
from resmagic.ipython.storestart import StoreStart, say_once
from resmagic.ipython.which_cell import (
    execute_request,
    request_header,
    running_cell,
    running_cell_id,
)
from resmagic.units import format_bytes, format_seconds

if TYPE_CHECKING:
    from resmagic.report import Report
    from resmagic.store.query import LastRun
    from resmagic.store.recorder import Recorder
    from resmagic.store.rows import CellRun
    from resmagic.store.writer import Pending

__all__ = ["StoreHook", "describe_last"]


class _Open:
    """A measured cell the store was told of (a plain class: no dataclass made at load)."""

    __slots__ = ("cached", "frame", "previous", "run")

    def __init__(
        self,
        frame: Frame,
        run: CellRun,
        previous: Pending[dict[str, LastRun]] | None,
        cached: dict[str, LastRun] | None = None,
    ) -> None:
        self.frame = frame
        self.run = run
        self.previous = previous
        self.cached = cached

    def last(self) -> dict[str, LastRun]:
        """What the cell did last time, as far as known now: never waits for the writer."""
        if self.cached is not None:
            return self.cached
        pending = self.previous
        return (pending.result(0) if pending is not None and pending.done else None) or {}


class StoreHook(StoreStart):
    """One shell's link to the recorder.

    Args:
        shell: the IPython shell.
        configured: ``c.ResMagic.store``: None for the profile's file, ``""`` for none.
    """

    def __init__(self, shell: Any, configured: str | None) -> None:
        super().__init__(shell, configured)
        self.open: list[_Open] = []
        self._new_run: Callable[[str | None, str | None, int | None, str | None], CellRun] | None
        self._new_run = None
        self._known: tuple[Any, ...] | None = None
        """The last unmeasured cell's (number, request id, its ExecutionInfo, notebook, run)."""
        self._from_threads: tuple[int | None, str | None, CellRun] | None = None
        """The last cell number another thread reported in: (number, notebook, run)."""

    def _end_open(self, recorder: Recorder) -> None:
        while self.open:
            recorder.ended(self.open.pop().run)

    # -- the runner's hooks ----------------------------------------------------------------

    def opened(self, frame: Frame) -> None:
        """A measured cell's scopes are open: its running row, and its last run looked up."""
        if not settings.store:
            return
        recorder = self._recorder or self.ready()
        if self._warm is not None:
            self._warmed(recorder)
        run = self._cell(frame.info, frame.cell)
        # One pass over the layers (issue 26 C1: four comprehensions were ~2 µs of a cell).
        scopes: list[str] = []
        gpu: Any = None
        shown = False  # -q everywhere: nobody asks for last time
        for layer in frame.layers:
            magic = layer.magic
            scopes.append(magic)
            if run.label is None and (label := getattr(layer.scope, "label", None)):
                run.label = str(label)
            # A layer's magic names its scope's class (issue 26: gpu_scope is not imported here).
            if gpu is None and magic == "gpu_scope":
                gpu = layer.scope
            if layer.render is not None:
                shown = True
        run.scope = ",".join(scopes)
        run.own = tuple(layer.scope for layer in frame.layers)
        if gpu is not None:
            run.opened = gpu.opened  # the running row's before: what the scope opened with
            recorder.started(run, gpu.readings)
        else:
            recorder.started(run)
        cached = previous = None
        if shown:  # -q: nothing shows last time (no text, no panel, no watch line): no lookup
            recent = self._recent
            assert recent is not None  # made by ready()
            cached = recent.get(run.cell_id, run.code_sha)
            if cached is None:
                previous = recorder.previous(run, scopes)
        self.open.append(_Open(frame, run, previous, cached))

    def closed(self, frame: Frame) -> None:
        """The cell's scopes have closed and reported: its running row goes."""
        if not self._started:
            return  # nothing opened: the store was off when the cell started
        recorder = self._recorder or self.ready()
        opened = self.open
        for i in range(len(opened) - 1, -1, -1):
            if opened[i].frame is frame:
                run = opened.pop(i).run
                recorder.ended(run)
                reports = [r for layer in frame.layers if (r := layer.scope.report) is not None]
                self.recent.remember(run.cell_id, run.code_sha, reports)
                break
        if self._deaths is not None:
            self._said(recorder)
        problem = recorder.problem
        if problem is not None:
            say_once(problem)

    def owning(self, scopes: Sequence[Any]) -> Callable[[], None]:
        """Our magic runs its own body (``%%time`` above ``%%timed``, ``run_cell_magic``).

        Until the returned function is called, ``scopes``' reports are the cell's own, as a
        header's layers are: stored past ``store_per_cell`` whatever the body reported.
        """
        if not settings.store:
            return _nothing
        try:
            run = self.current()
        except Exception:  # the store cannot open: the report will say so, not this
            return _nothing
        if run is None:
            return _nothing
        before = run.own
        run.own = (*before, *scopes)

        def restore() -> None:
            run.own = before

        return restore

    def current(self) -> CellRun | None:
        """The cell a report published now belongs to (a thread's: its number alone)."""
        if self.open:
            return self.open[-1].run
        if threading.current_thread() is not threading.main_thread():
            return self._from_thread()
        return self._unmeasured()

    def _from_thread(self) -> CellRun:
        """The run of a report from another thread: the running cell's number alone.

        The kernel's request read from another thread may be the next cell's (ipykernel 6):
        no id, no code, rather than another cell's. One object per cell number, as for the
        main thread's unmeasured cells, so its reports share one count for the store's cap.
        """
        number = running_cell(self.shell)
        notebook = self.ready().notebook
        known = self._from_threads
        if known is not None and known[0] == number and known[1] is notebook:
            run: CellRun = known[2]
            return run
        run = self._new(notebook, None, number, None)
        run.each_report = True
        self._from_threads = (number, notebook, run)
        return run

    def _unmeasured(self) -> CellRun:
        """The run of a cell that is not measured, for its reports (``with timed()`` in a loop).

        One object per cell, made with the cell's first report: the cell's id and code hash
        are looked up once, not once per report (issue 26: a loop of blocks publishes
        thousands, and the hash grows with the cell). It is the same cell while its number,
        the kernel's request (its message id) and IPython's record of the running cell (its
        ``ExecutionInfo``) are the same. The key holds no value of the user's: not the
        result (its ``Out``, its traceback), not the request's buffers. Each report is
        still a run of its own (``each_report``), as before.
        """
        shell = self.shell
        number = running_cell(shell)
        request = _request_id(shell)
        result = getattr(getattr(shell, "displayhook", None), "exec_result", None)
        running = getattr(result, "info", None)  # not the result: it holds the cell's Out
        notebook = (self._recorder or self.ready()).notebook
        known = self._known
        if (
            known is not None
            and known[0] == number
            and known[1] == request
            and known[2] is running
            and known[3] is notebook
        ):
            run: CellRun = known[4]
            return run
        run = self._cell(None, number)
        run.each_report = True
        self._known = (number, request, running, notebook, run)
        return run

    def _cell(self, info: Any, number: int | None) -> CellRun:
        raw = getattr(info, "raw_cell", None)
        if raw is None:
            request = execute_request(self.shell)
            content = request.get("content") if request is not None else None
            raw = content.get("code") if isinstance(content, Mapping) else None
        cell_id = running_cell_id(self.shell, info)
        return self._new((self._recorder or self.ready()).notebook, cell_id, number, raw)

    def _new(
        self, notebook: str | None, cell_id: str | None, number: int | None, raw: str | None
    ) -> CellRun:
        new_run = self._new_run
        if new_run is None:
            new_run = self._new_run = _run_maker()
        return new_run(notebook, cell_id, number, raw)

    # -- "last time" -----------------------------------------------------------------------

    def last_run(self, scope: str) -> LastRun | None:
        """The running cell's last run of ``scope`` (for a live view's ETA), if known yet."""
        entry = self.open[-1] if self.open else None
        return entry.last().get(scope) if entry is not None else None

    def last_time(self, report: Report, *, peak_from: str | None = None) -> str:
        """`` · last time 12.3 s, peak 5.1 GiB`` for a report of a cell that ran before, else "".

        ``peak_from``: the peak of that scope's last run instead (watch mode's one line).
        """
        entry = self.open[-1] if self.open else None
        if entry is None:
            return ""
        found = entry.last()
        last = found.get(report.scope)
        if last is None:
            return ""
        other = found.get(peak_from) if peak_from is not None else None
        if other is not None and other.peak_bytes is not None:
            last = dataclasses.replace(last, peak_bytes=other.peak_bytes, device=other.device)
        return f" · {describe_last(last)}"


def describe_last(last: LastRun) -> str:
    """``last time 12.3 s, peak 5.1 GiB cuda:0`` (``, interrupted`` when it did not end well).

    The device is named: a host peak and a GPU peak read alike (issue 27 item 2).
    """
    text = f"last time {format_seconds(last.duration_s)}"
    if last.peak_bytes is not None:
        text += f", peak {format_bytes(last.peak_bytes)}"
        if last.device:
            text += f" {last.device}"
    return text if last.status == "ok" else f"{text}, {last.status}"


def _nothing() -> None:
    pass


def _request_id(shell: Any) -> object:
    """The message id of the request the kernel serves now (None in a terminal)."""
    request = request_header(shell)
    return request[1].get("msg_id") if request is not None else None


def _run_maker() -> Callable[[str | None, str | None, int | None, str | None], CellRun]:
    """``CellRun(notebook, cell_id, number, sha of raw)``, its module imported once, here."""
    from resmagic.store.rows import CellRun, code_sha

    def new_run(
        notebook: str | None, cell_id: str | None, number: int | None, raw: str | None
    ) -> CellRun:
        return CellRun(notebook, cell_id, number, code_sha(raw) if raw else None)

    return new_run
