"""The run store's start in IPython: the shell's store set at load, a dead kernel's cell said.

At load the store is set to the profile folder's file (``c.ResMagic.store`` moves it, ``""``
turns it off) and the previous kernel on this notebook is said, once, if it died in a cell.

Issue 26 (``%load_ext`` ≤ 12 ms): the store's modules, its writer thread and SQLite start
with the first measured cell, the first report or the first ``%resmagic`` command, unless a
dead kernel's state file (read without SQLite) names a cell to say at load.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from resmagic import bus
from resmagic.config import settings
from resmagic.errors import ResmagicError
from resmagic.store.paths import default_path, kernels_folder

if TYPE_CHECKING:
    from resmagic.report import Report
    from resmagic.store.deadkernels import Found
    from resmagic.store.died import Death
    from resmagic.store.recent import Recent
    from resmagic.store.recorder import Recorder
    from resmagic.store.rows import CellRun
    from resmagic.store.statefile import State
    from resmagic.store.writer import Pending

__all__ = ["StoreStart"]


class StoreStart:
    """One shell's store: set at load, the recorder started when first needed, put back.

    :class:`~resmagic.ipython.runstore.StoreHook` adds the per-cell hooks.

    Args:
        shell: the IPython shell.
        configured: ``c.ResMagic.store``: None for the profile's file, ``""`` for none.
    """

    def __init__(self, shell: Any, configured: str | None) -> None:
        self.shell = shell
        self.configured = configured
        self._recent: Recent | None = None
        self._saved: tuple[Any, ...] = ()
        self._started = False
        self._lock = threading.Lock()
        self._slot: Any = None  # the bus's store slot, while the first report starts us
        self._loaded = False
        self._before = ""
        self._dead: list[State] | None = None
        self._recorder: Recorder | None = None
        self._warm: Pending[None] | None = None
        self._deaths: Pending[Found] | None = None

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
            recorder.say,
        )
        kernel = getattr(self.shell, "kernel", None)
        recorder.session_id = getattr(getattr(kernel, "session", None), "session", None)
        recorder.notebook = _notebook(self.shell)
        recorder.script = False
        recorder.context = self.current
        recorder.say = say_once
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
        from resmagic.store import deadkernels

        try:
            if named:
                self._say_deaths(deadkernels.find(recorder))
            else:
                self._deaths = deadkernels.find_later(recorder)
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
        from resmagic.store import deadkernels

        try:
            deaths = deadkernels.said(pending)
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
        self._end_open(recorder)
        recorder.close()
        if self._saved:
            (
                settings.store,
                recorder.context,
                recorder.session_id,
                recorder.notebook,
                recorder.script,
                recorder.say,
            ) = self._saved

    def current(self) -> CellRun | None:
        """The cell a report published now belongs to (the per-cell hooks say; here none)."""
        return None

    def _end_open(self, recorder: Recorder) -> None:
        """End the cells still open at unload (the per-cell hooks hold them; here none)."""


def _notebook(shell: Any) -> str | None:
    """The notebook this kernel runs (ipykernel's ``__session__``, else ``JPY_SESSION_NAME``)."""
    return shell.user_ns.get("__session__") or os.environ.get("JPY_SESSION_NAME")


def say_once(text: str) -> None:
    """A store problem as a measured cell's end says it: on stderr, under the cell."""
    print(f"resmagic: {text} (said once)", file=sys.stderr)
