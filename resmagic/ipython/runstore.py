"""The run store in IPython: on from ``%load_ext``, every measured cell recorded as it runs.

At load the store opens in the profile folder (``c.ResMagic.store`` moves it, ``""`` turns
it off) and says, once, if the previous kernel on this notebook died in a cell. A measured
cell gets a ``running`` row while it runs (its live peak written about once a second) and
its reports when it ends; its text lines say how the same cell did last time.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resmagic.config import settings
from resmagic.errors import ResmagicError
from resmagic.ipython.cell_number import running_cell
from resmagic.ipython.cellid import execute_request, running_cell_id
from resmagic.ipython.cells.runner import Frame
from resmagic.probes import cgroup
from resmagic.report import Report
from resmagic.scopes.gpu import gpu_scope
from resmagic.store.paths import default_path
from resmagic.store.query import LastRun
from resmagic.store.recent import Recent
from resmagic.store.recorder import recorder
from resmagic.store.rows import CellRun, code_sha
from resmagic.store.running import host_reading
from resmagic.store.writer import Pending
from resmagic.units import format_bytes, format_seconds

__all__ = ["StoreHook", "describe_last"]


@dataclass
class _Open:
    frame: Frame
    run: CellRun
    previous: Pending[dict[str, LastRun]] | None
    cached: dict[str, LastRun] | None = None

    def last(self) -> dict[str, LastRun]:
        """What the cell did last time, as far as known now: never waits for the writer."""
        if self.cached is not None:
            return self.cached
        pending = self.previous
        return (pending.result(0) if pending is not None and pending.done else None) or {}


class StoreHook:
    """One shell's link to the recorder.

    Args:
        shell: the IPython shell.
        configured: ``c.ResMagic.store``: None for the profile's file, ``""`` for none.
    """

    def __init__(self, shell: Any, configured: str | None) -> None:
        self.shell = shell
        self.configured = configured
        self.open: list[_Open] = []
        self.recent = Recent()
        self._saved: tuple[Any, ...] = ()

    @property
    def default(self) -> str:
        """The profile's store: ``profile_default/resmagic.sqlite`` (or this profile's)."""
        location = getattr(getattr(self.shell, "profile_dir", None), "location", None)
        return default_path(location)

    def load(self) -> None:
        """Point the recorder at this shell's store; say which cell the last kernel died in.

        Only a kernel that knows its notebook (``__session__``) says so; without one the
        dead kernel's rows are marked ``died`` silently (it may have been another program).
        """
        self._saved = (
            settings.store,
            recorder.context,
            recorder.session_id,
            recorder.notebook,
            recorder.script,
        )
        try:  # a link, a device, another program's database: refused before it is touched
            settings.update(store=self.default if self.configured is None else self.configured)
        except ResmagicError as exc:
            print(f"resmagic: run store off: {exc}", file=sys.stderr)
            settings.store = ""
        kernel = getattr(self.shell, "kernel", None)
        recorder.session_id = getattr(getattr(kernel, "session", None), "session", None)
        recorder.notebook = self.shell.user_ns.get("__session__") or os.environ.get(
            "JPY_SESSION_NAME"
        )
        recorder.script = False
        recorder.context = self.current
        if settings.store:
            self._say_deaths()
            # Waited for here, once: the first cells after a restart then know last time
            # without waiting themselves (a few ms for a notebook's 5,000 newest reports).
            warm = recorder.lookup(functools.partial(self.recent.warm, notebook=recorder.notebook))
            if warm is not None:
                recorder.wait(warm, timeout=2.0)

    def _say_deaths(self) -> None:
        oom_kills = cgroup.oom_kills()
        try:
            deaths = recorder.deaths()
        except Exception as exc:  # an unusable file must not stop %load_ext: no store
            print(f"resmagic: run store off: cannot use {settings.store}: {exc}", file=sys.stderr)
            _ = recorder.problem  # said here: not again after the first cell
            settings.store = ""
            recorder.writer()
            return
        if recorder.notebook is None:
            return  # a terminal, or a kernel no frontend named: no "same notebook" to speak of
        for death in deaths:
            print(death.message(oom_kills))

    def unload(self) -> None:
        """Write what is queued, stop the writer, put the recorder back as it was."""
        while self.open:
            recorder.ended(self.open.pop().run)
        recorder.close()
        if self._saved:
            (
                settings.store,
                recorder.context,
                recorder.session_id,
                recorder.notebook,
                recorder.script,
            ) = self._saved

    # -- the runner's hooks ----------------------------------------------------------------

    def opened(self, frame: Frame) -> None:
        """A measured cell's scopes are open: its running row, and its last run looked up."""
        if not settings.store:
            return
        run = self._cell(frame.info, frame.cell)
        run.scope = ",".join(layer.magic for layer in frame.layers)
        run.label = next(
            (str(v) for layer in frame.layers if (v := getattr(layer.scope, "label", None))),
            None,
        )
        scope = next((lay.scope for lay in frame.layers if isinstance(lay.scope, gpu_scope)), None)
        read = scope.readings if scope is not None else host_reading
        run.opened = scope.opened if scope is not None else None  # the running row's before
        recorder.started(run, read)
        shown = any(layer.render is not None for layer in frame.layers)  # -q: nobody asks
        scopes = [layer.magic for layer in frame.layers]
        cached = self.recent.get(run.cell_id, run.code_sha)
        previous = recorder.previous(run, scopes) if shown and cached is None else None
        self.open.append(_Open(frame, run, previous, cached))

    def closed(self, frame: Frame) -> None:
        """The cell's scopes have closed and reported: its running row goes."""
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i].frame is frame:
                run = self.open.pop(i).run
                recorder.ended(run)
                reports = [r for layer in frame.layers if (r := layer.scope.report) is not None]
                self.recent.remember(run.cell_id, run.code_sha, reports)
                break
        problem = recorder.problem
        if problem is not None:
            print(f"resmagic: {problem} (said once)", file=sys.stderr)

    def current(self) -> CellRun | None:
        """The cell a report published now belongs to (a thread's: its number alone)."""
        if self.open:
            return self.open[-1].run
        if threading.current_thread() is not threading.main_thread():
            # The kernel's request read from another thread may be the next cell's
            # (ipykernel 6): no id, no code, rather than another cell's.
            return CellRun(recorder.notebook, None, running_cell(self.shell), None)
        return self._cell(None, running_cell(self.shell))

    def _cell(self, info: Any, number: int | None) -> CellRun:
        raw = getattr(info, "raw_cell", None)
        if raw is None:
            request = execute_request(self.shell)
            content = request.get("content") if request is not None else None
            raw = content.get("code") if isinstance(content, Mapping) else None
        cell_id = running_cell_id(self.shell, info)
        return CellRun(recorder.notebook, cell_id, number, code_sha(raw) if raw else None)

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
