"""The run store in IPython: on from ``%load_ext``, every measured cell recorded as it runs.

At load the store is set to the profile folder's file (``c.ResMagic.store`` moves it, ``""``
turns it off) and the previous kernel on this notebook is said, once, if it died in a cell.
A measured cell gets a ``running`` row while it runs (its live peak written about once a
second) and its reports when it ends; its text lines say how the same cell did last time.

Issue 26 (``%load_ext`` ≤ 12 ms): the store's modules, its writer thread and SQLite start
with the first measured cell, the first report or the first ``%resmagic`` command, unless a
dead kernel's state file (read without SQLite) names a cell to say at load.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from resmagic import bus
from resmagic.config import settings
from resmagic.errors import ResmagicError
from resmagic.ipython.cell_number import running_cell
from resmagic.ipython.cellid import execute_request, running_cell_id
from resmagic.ipython.cells.runner import Frame
from resmagic.store.paths import default_path, kernels_folder
from resmagic.units import format_bytes, format_seconds

if TYPE_CHECKING:
    from resmagic.report import Report
    from resmagic.store.died import Death
    from resmagic.store.query import LastRun
    from resmagic.store.recent import Recent
    from resmagic.store.recorder import Recorder
    from resmagic.store.rows import CellRun
    from resmagic.store.statefile import State
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
        self._recent: Recent | None = None
        self._saved: tuple[Any, ...] = ()
        self._started = False
        self._lock = threading.Lock()
        self._slot: Any = None  # the bus's store slot, while the first report starts us
        self._loaded = False
        self._before = ""
        self._dead: list[State] | None = None
        self._recorder: Recorder | None = None
        self._new_run: Callable[[str | None, str | None, int | None, str | None], CellRun] | None
        self._new_run = None
        self._warm: Pending[None] | None = None
        self._deaths: Pending[tuple[list[Death], list[State]]] | None = None

    @property
    def default(self) -> str:
        """The profile's store: ``profile_default/resmagic.sqlite`` (or this profile's)."""
        location = getattr(getattr(self.shell, "profile_dir", None), "location", None)
        return default_path(location)

    def load(self) -> None:
        """Set this shell's store; say which cell the last kernel died in, if a state file says.

        Only a kernel that knows its notebook (``__session__``) says so; without one the
        dead kernel's rows are marked ``died`` silently (it may have been another program).
        The recorder starts here only when a dead kernel's state file is there (to say it, or
        to settle its rows on the writer thread); otherwise with the first thing that needs it.
        """
        self._before, self._loaded = settings.store, True
        try:  # a link, a device, another program's database: refused before it is touched
            settings.update(store=self.default if self.configured is None else self.configured)
        except ResmagicError as exc:
            print(f"resmagic: run store off: {exc}", file=sys.stderr)
            settings.store = ""
        if settings.store and self._dead_pages():
            self.ready()  # a dead kernel to say (at once) or whose rows to settle (queued)
        else:  # the first report published starts the recorder before it is recorded
            self._slot = bus.set_store(self._first_report)

    def _dead_pages(self) -> list[State]:
        """The state files of dead kernels beside the store (read once, without SQLite)."""
        if self._dead is None:
            self._dead = []
            try:  # none there (a kernel removes its own at exit): nothing to import or read
                if not os.listdir(kernels_folder(settings.store)):
                    return self._dead
            except OSError:
                return self._dead
            from resmagic.store.liveness import alive
            from resmagic.store.statefile import read_dead

            self._dead = read_dead(settings.store, alive)
        return self._dead

    def _first_report(self, report: Report) -> None:
        slot = self._slot
        self.ready()
        if slot is not None:
            slot(report)

    @property
    def recent(self) -> Recent:
        """The cells' last runs, cached (made when the recorder starts)."""
        self.ready()
        assert self._recent is not None
        return self._recent

    def ready(self) -> Recorder:
        """The recorder, pointed at this shell (on its first call: the death check, warm-up)."""
        ready = self._recorder
        if ready is not None:
            return ready
        from resmagic.store.recorder import recorder

        with self._lock:
            if self._started:
                return recorder
            self._start(recorder)
            self._started = True
            self._recorder = recorder
        return recorder

    def _start(self, recorder: Recorder) -> None:
        from resmagic.store.recent import Recent

        if self._slot is not None:
            bus.set_store(self._slot)
            self._slot = None
        self._recent = Recent()
        self._saved = (
            self._before,
            recorder.context,
            recorder.session_id,
            recorder.notebook,
            recorder.script,
        )
        kernel = getattr(self.shell, "kernel", None)
        recorder.session_id = getattr(getattr(kernel, "session", None), "session", None)
        recorder.notebook = _notebook(self.shell)
        recorder.script = False
        recorder.context = self.current
        if settings.store:
            self._check_deaths(recorder)
            # Not waited for here (issue 26: `%load_ext` ≤ 12 ms): the first measured cell
            # waits for it, once, so the first cells after a restart still know last time.
            self._warm = recorder.lookup(
                functools.partial(self._recent.warm, notebook=recorder.notebook)
            )

    def _check_deaths(self, recorder: Recorder) -> None:
        """Say now which cells a dead kernel of this notebook died in; check the rest later.

        Issue 26: waiting for the writer to open SQLite and mark the dead kernels' cells was
        most of ``load()``. Only a dead kernel's state file (read without SQLite) that names
        an open cell of this notebook makes the start wait, as before, and say it (at load).
        Otherwise the marking goes to the writer thread; a death it still finds (a kernel that
        kept no state file) is said at the end of the first measured cell.
        """
        notebook = recorder.notebook
        named = notebook is not None and any(
            state.notebook == notebook and state.runs for state in self._dead_pages()
        )
        try:
            if named:
                self._say_deaths(recorder.deaths())
            else:
                self._deaths = recorder.deaths_later()
        except Exception as exc:  # an unusable file must not stop %load_ext: no store
            self._store_off(recorder, exc)

    @staticmethod
    def _store_off(recorder: Recorder, exc: BaseException) -> None:
        print(f"resmagic: run store off: cannot use {settings.store}: {exc}", file=sys.stderr)
        _ = recorder.problem  # said here: not again after the first cell
        settings.store = ""
        recorder.writer()

    @staticmethod
    def _say_deaths(deaths: list[Death]) -> None:
        from resmagic.store.recorder import recorder

        if recorder.notebook is None:
            return  # a terminal, or a kernel no frontend named: no "same notebook" to speak of
        from resmagic.probes import cgroup

        oom_kills = cgroup.oom_kills()
        for death in deaths:
            print(death.message(oom_kills))

    def _warmed(self, recorder: Recorder) -> None:
        """Wait (once, 2 s at most) for the start's warm-up of "last time"."""
        warm, self._warm = self._warm, None
        if warm is not None and not warm.done:
            recorder.wait(warm, timeout=2.0)

    def _said(self, recorder: Recorder, timeout: float = 0.0) -> None:
        """Say what the start's queued death check found, once it is done."""
        pending = self._deaths
        if pending is None:
            return
        if not pending.done and timeout > 0:
            recorder.wait(pending, timeout)
        if not pending.done:
            return  # said at a later cell's end
        self._deaths = None
        try:
            deaths = recorder.said_deaths(pending)
        except Exception as exc:
            self._store_off(recorder, exc)
            return
        self._say_deaths(deaths)

    def unload(self) -> None:
        """Write what is queued, stop the writer, put the recorder back as it was."""
        if self._slot is not None:
            bus.set_store(self._slot)
            self._slot = None
        self._warm = None
        loaded = sys.modules.get("resmagic.store.recorder")  # a command may have opened it
        if not self._started:
            if self._loaded:
                settings.store = self._before
            if loaded is not None:
                loaded.recorder.close()
            return
        recorder = self.ready()
        self._said(recorder, timeout=5.0)
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
        if gpu is not None:
            run.opened = gpu.opened  # the running row's before: what the scope opened with
            recorder.started(run, gpu.readings)
        else:
            recorder.started(run)
        recent = self._recent
        assert recent is not None  # made by ready()
        cached = recent.get(run.cell_id, run.code_sha)
        previous = recorder.previous(run, scopes) if shown and cached is None else None
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
            print(f"resmagic: {problem} (said once)", file=sys.stderr)

    def current(self) -> CellRun | None:
        """The cell a report published now belongs to (a thread's: its number alone)."""
        if self.open:
            return self.open[-1].run
        if threading.current_thread() is not threading.main_thread():
            # The kernel's request read from another thread may be the next cell's
            # (ipykernel 6): no id, no code, rather than another cell's.
            return self._new(self.ready().notebook, None, running_cell(self.shell), None)
        return self._cell(None, running_cell(self.shell))

    def _cell(self, info: Any, number: int | None) -> CellRun:
        raw = getattr(info, "raw_cell", None)
        if raw is None:
            request = execute_request(self.shell)
            content = request.get("content") if request is not None else None
            raw = content.get("code") if isinstance(content, Mapping) else None
        cell_id = running_cell_id(self.shell, info)
        return self._new(self.ready().notebook, cell_id, number, raw)

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


def _notebook(shell: Any) -> str | None:
    """The notebook this kernel runs (ipykernel's ``__session__``, else ``JPY_SESSION_NAME``)."""
    return shell.user_ns.get("__session__") or os.environ.get("JPY_SESSION_NAME")


def _run_maker() -> Callable[[str | None, str | None, int | None, str | None], CellRun]:
    """``CellRun(notebook, cell_id, number, sha of raw)``, its module imported once, here."""
    from resmagic.store.rows import CellRun, code_sha

    def new_run(
        notebook: str | None, cell_id: str | None, number: int | None, raw: str | None
    ) -> CellRun:
        return CellRun(notebook, cell_id, number, code_sha(raw) if raw else None)

    return new_run
