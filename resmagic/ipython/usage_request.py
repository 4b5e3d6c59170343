"""Answer the control channel's ``usage_request`` with a ``resmagic`` block (the status bar item).

ipykernel (6.29 to 7.x) looks a control message's handler up in ``kernel.control_handlers``
each time and awaits what it returns, on the control thread, so the request is answered while
a cell runs. The replacement must be ``async``: a sync wrapper around ipykernel's coroutine
returns it unawaited and nothing is sent. It sends ipykernel's own keys (``kernel_cpu``,
``kernel_memory``, ``host_virtual_memory``, ...) plus ``resmagic``
(:func:`resmagic.snapshot.snapshot`). Unloading puts ipykernel's handler back.

This module loads with the first request (issue 26): ipykernel's table holds the session's
:class:`~resmagic.ipython.session.UsageEntry`, which builds the handler here when first asked
and puts ipykernel's handler back at unload.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from resmagic.ipython.which_cell import running_cell

if TYPE_CHECKING:
    from resmagic.snapshot import CellPeaks

__all__ = ["Handler", "UsageHandler"]

Handler = Callable[[Any, Any, dict[str, Any]], Awaitable[None] | None]


def usual_keys(kernel: Any) -> dict[str, Any]:
    """The keys ipykernel's own ``usage_request`` answers with (its 7.4 handler's logic)."""
    content: dict[str, Any] = {"hostname": socket.gethostname(), "pid": os.getpid()}
    try:
        import psutil
    except ImportError:
        content["cpu_count"] = os.cpu_count()
        return content
    me = psutil.Process()
    known = getattr(kernel, "processes", {})
    # The same Process objects from poll to poll: cpu_percent measures since the last call.
    kernel.processes = known = {
        p.pid: known.get(p.pid, p) for p in [me, *me.children(recursive=True)]
    }
    metric = kernel.get_process_metric_value  # 0 for a process gone since the listing
    content["kernel_cpu"] = sum(metric(p, "cpu_percent", None) for p in known.values())
    kind = "pss" if hasattr(me.memory_full_info(), "pss") else "rss"
    content["kernel_memory"] = sum(metric(p, "memory_full_info", kind) for p in known.values())
    host_cpu = psutil.cpu_percent()
    if host_cpu:  # the first call answers a meaningless 0.0
        content["host_cpu_percent"] = host_cpu
    content["cpu_count"] = psutil.cpu_count(logical=True)
    content["host_virtual_memory"] = dict(psutil.virtual_memory()._asdict())
    return content


class UsageHandler:
    """Our ``usage_request`` handler on one kernel, and the cell hooks that feed its peaks.

    Args:
        shell: the IPython shell.
        kernel: its ipykernel kernel.
        original: ipykernel's own handler, which answers once this one is closed.
    """

    def __init__(self, shell: Any, kernel: Any, original: Handler) -> None:
        self.shell = shell
        self.kernel = kernel
        self.original = original
        self._cells: CellPeaks | None = None
        self.active = True
        self.hooked = False
        self._lock = threading.Lock()
        self._depth = 0

    async def __call__(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        """Reply to one request; after unload, or if reading fails badly, ipykernel's reply."""
        session = getattr(self.kernel, "session", None)
        if not self.active or session is None:
            result = self.original(stream, ident, parent)
            if result is not None:
                await result
            return
        if not self.hooked:
            self._hook()
        content = usual_keys(self.kernel)
        try:
            from resmagic.snapshot import snapshot  # with the first request (issue 26)

            content["resmagic"] = snapshot(self.cells)
        except Exception as exc:  # never leave the frontend without an answer
            content["resmagic"] = {"schema": 1, "error": f"{type(exc).__name__}: {exc}"}
        session.send(stream, "usage_reply", content, parent, ident)

    @property
    def cells(self) -> CellPeaks:
        """The running cell's peak frame, made with the first request.

        Issue 26: the probes it reads load then, not at ``%load_ext``.
        """
        if self._cells is None:
            from resmagic.snapshot import CellPeaks

            self._cells = CellPeaks()
        return self._cells

    # -- the running cell ------------------------------------------------------------------

    def pre_run_cell(self, info: Any) -> None:
        """A top-level cell starts: open its peak frame (nested ``run_cell`` calls count in it)."""
        self._depth += 1
        if self._depth == 1:
            number = running_cell(self.shell) if getattr(info, "store_history", False) else None
            self.cells.start(number)

    def post_run_cell(self, result: Any) -> None:
        """The cell ended: its peaks stay in the replies until the next cell."""
        self._depth = max(self._depth - 1, 0)
        if self._depth == 0:
            self.cells.end()

    # -- the cell hooks --------------------------------------------------------------------

    def _hook(self) -> None:
        # Cells cost nothing until something asks: a session nobody watches never pays the
        # ~40 us a cell of opening and closing its peak frame. The cell running when the
        # first request comes has no peak (it started unwatched). IPython copies the list
        # of callbacks before calling them, so appending from the control thread is safe.
        with self._lock:
            if self.active and not self.hooked:
                self.shell.events.register("pre_run_cell", self.pre_run_cell)
                self.shell.events.register("post_run_cell", self.post_run_cell)
                self.hooked = True

    def close(self) -> None:
        """Unhook the cells; requests from now on get ipykernel's own reply."""
        with self._lock:
            self.active = False
        for event, hook in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            if hook in self.shell.events.callbacks[event]:
                self.shell.events.unregister(event, hook)
        if self._cells is not None:
            self._cells.end()
