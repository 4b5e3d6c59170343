"""One shell's resmagic: its objects, built once at ``%load_ext`` in the order they need each other.

The per-shell composition root. Each object gets what it uses through its constructor:

- :class:`~resmagic.ipython.views.output.ReportOutput`: where reports are displayed;
- :class:`~resmagic.ipython.runstore.StoreHook`: the run store's per-shell side (last time);
- :class:`~resmagic.ipython.views.notes.Notes`: how reports are shown, with the store's lines;
- :class:`~resmagic.ipython.cells.options.LayerFactory`: option lines to scopes and views;
- :class:`~resmagic.ipython.watch.Watcher`: watch mode's layers;
- :class:`~resmagic.ipython.guarding.CellGuard`: ``%resmagic guard``;
- :class:`~resmagic.ipython.cells.runner.CellRunner`: the cell hooks (and its header
  transformer), telling the store when a cell's scopes open and close;
- :class:`UsageEntry`: the status bar's readings (:mod:`resmagic.ipython.usage_request`).

The magics object (:class:`~resmagic.ipython.magics.ResMagics`) is made last, from the
session; the commands of ``%resmagic`` take the session itself.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from resmagic.ipython.cells.options import BUILDERS, LayerFactory
from resmagic.ipython.cells.runner import CellRunner
from resmagic.ipython.runstore import StoreHook
from resmagic.ipython.views.notes import Notes
from resmagic.ipython.views.output import ReportOutput
from resmagic.ipython.which_cell import running_cell_id

if TYPE_CHECKING:
    from resmagic.ipython.guarding import CellGuard
    from resmagic.ipython.usage_request import Handler, UsageHandler
    from resmagic.ipython.watch import Watcher, WatchOptions

__all__ = ["USAGE_REQUEST", "Session", "UsageEntry"]

USAGE_REQUEST = "usage_request"
"""The control message the status bar item (and jupyter-resource-usage) polls."""


class _Unwatched:
    """The runner's watch mode until something asks for the :class:`Watcher` (issue 26)."""

    active = False

    def layers(self, code: str = "") -> None:
        """No layers: watch mode is off."""
        return


_UNWATCHED = _Unwatched()


class UsageEntry:
    """Our entry in ipykernel's table for ``usage_request``: the reply loads when first asked.

    Issue 26: :mod:`resmagic.ipython.usage_request` is not imported at ``%load_ext``. ipykernel
    (6.29 to 7.x) looks the handler up for each request and awaits it on the control thread.
    """

    def __init__(self, shell: Any, kernel: Any, original: Handler) -> None:
        self.shell = shell
        self.kernel = kernel
        self.original = original
        self.handler: UsageHandler | None = None
        self.active = True
        self._lock = threading.Lock()

    async def __call__(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        """Answer with our handler; once unloaded (yet still called, wrapped), with ipykernel's."""
        with self._lock:
            if self.active and self.handler is None:
                try:
                    from resmagic.ipython.usage_request import UsageHandler

                    self.handler = UsageHandler(self.shell, self.kernel, self.original)
                except Exception:  # the frontend still gets ipykernel's reply, every time
                    self.active = False
            handler = self.handler if self.active else None
        if handler is not None:
            await handler(stream, ident, parent)
            return
        result = self.original(stream, ident, parent)
        if result is not None:
            await result

    @classmethod
    def install(cls, shell: Any) -> tuple[UsageEntry | None, str]:
        """Take ``usage_request`` on ``shell``'s kernel; None and why not outside ipykernel."""
        kernel = getattr(shell, "kernel", None)
        handlers = getattr(kernel, "control_handlers", None)
        if not isinstance(handlers, dict):
            return None, "not in an ipykernel kernel: no usage_request to answer"
        original = handlers.get(USAGE_REQUEST)
        if original is None:
            return None, "this ipykernel has no usage_request (it came in ipykernel 6.11)"
        entry = cls(shell, kernel, original)
        handlers[USAGE_REQUEST] = entry
        return entry, "answering usage_request with a resmagic block"

    def unregister(self) -> None:
        """Put ipykernel's handler back (or, if someone wrapped ours, pass through to it)."""
        with self._lock:
            self.active = False
            handler = self.handler
        handlers = self.kernel.control_handlers
        if handlers.get(USAGE_REQUEST) is self:
            handlers[USAGE_REQUEST] = self.original
        if handler is not None:
            handler.close()


class Session:
    """resmagic in one shell.

    Args:
        shell: the IPython shell.
        parsers: each cell magic's option parser, by magic name.
        store: ``c.ResMagic.store``: None for the profile's file, ``""`` for none.
    """

    def __init__(
        self, shell: Any, parsers: Mapping[str, argparse.ArgumentParser], store: str | None
    ) -> None:
        self.shell = shell
        self.output = ReportOutput(shell)
        self.store = StoreHook(shell, store)
        self.notes = Notes(
            shell, self.output, last_time=self.store.last_time, last_run=self.store.last_run
        )
        self.factory = LayerFactory(parsers, self.notes, shell)
        self._watcher: Watcher | None = None
        self._guard: CellGuard | None = None
        self.runner = CellRunner(
            shell,
            self.owns,
            self.factory,
            _UNWATCHED,
            self.output,
            on_open=self.store.opened,
            on_close=self.store.closed,
        )
        self.usage: UsageEntry | None = None
        self.usage_note = ""
        """Why the status bar item gets (or lacks) readings, for ``%resmagic status``."""

    def owns(self, magic: str) -> bool:
        """True when ``%%magic`` is one of ours and still registered to this session's magics."""
        method = self.shell.magics_manager.magics["cell"].get(magic)
        owner = getattr(method, "__self__", None)
        return magic in BUILDERS and getattr(owner, "session", None) is self

    @property
    def watcher(self) -> Watcher:
        """Watch mode's layers, made (and handed to the runner) when first asked for."""
        if self._watcher is None:
            from resmagic.ipython.watch import Watcher  # issue 26: not at %load_ext

            self._watcher = Watcher(self.factory, self.notes)
            self.runner.watcher = self._watcher
        return self._watcher

    @property
    def guard(self) -> CellGuard:
        """``%resmagic guard``, made when first asked for."""
        if self._guard is None:
            from resmagic.ipython.guarding import CellGuard  # issue 26: not at %load_ext

            self._guard = CellGuard(self.shell)
        return self._guard

    @property
    def cell(self) -> int | None:
        """``In[n]`` of the innermost running cell: what reports published now carry."""
        return self.runner.cell

    def cell_id(self) -> str | None:
        """The running cell's notebook id (Jupyter sends it), else None; main thread only.

        Another thread gets None: ipykernel 6 answers a thread with the newest request,
        which may be the next cell's.
        """
        if threading.current_thread() is not threading.main_thread():
            return None
        return running_cell_id(self.shell)

    def load(self) -> None:
        """Put the hooks in place, answer the status bar, open the store."""
        self.runner.register()
        self.output.register()
        self.usage, self.usage_note = UsageEntry.install(self.shell)  # the status bar's readings
        self.store.load()

    def watch(self, options: WatchOptions) -> None:
        """Measure every cell from the next one on (``UsageError`` for bad options)."""
        self.watcher.start(options)
        self.runner.arm()

    def unload(self) -> None:
        """Undo :meth:`load` and whatever modes were turned on since."""
        if self.usage is not None:
            self.usage.unregister()
        if self._watcher is not None:
            self._watcher.stop()
        if self._guard is not None:
            self._guard.off()
        self.runner.unregister()
        self.store.unload()
        self.output.unregister()
