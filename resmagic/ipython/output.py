"""Where a report goes: an output of its own, never under the cell's pending clear.

In a Jupyter kernel a report is a ``display_data`` output (never glued onto a ``print(...,
end='')`` the cell left unfinished), marked with :data:`MARK` in its metadata so tools can
tell it from the cell's own outputs. A cell that ends with ``clear_output(wait=True)`` asks
the frontend to clear everything at the *next* output; a report displayed then would erase
the cell's result. So when the hook sees such a clear go by it first displays an empty
placeholder, and the report fills that placeholder in (an ``update_display_data``, which
clears nothing) as long as no output of the cell has come since. In a terminal the report is
printed.
"""

from __future__ import annotations

import sys
from typing import Any

from IPython.display import DisplayHandle, display

__all__ = ["MARK", "ReportOutput"]

MARK: dict[str, Any] = {"resmagic": {"report": True}}
"""Output metadata of everything resmagic displays in a cell."""


class ReportOutput:
    """Shows reports in one shell, knowing whether the cell left a clear pending."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.kernel = getattr(shell, "kernel", None) is not None
        publisher = getattr(shell, "display_pub", None)
        self._publisher = publisher if hasattr(publisher, "register_hook") else None
        self._placeholder: DisplayHandle | None = None
        self._pending = False
        self._ours = False
        self._watched: list[Any] = []
        self.clears = 0
        """How many ``clear_output`` calls went by: a display made before one may be gone."""

    def register(self) -> None:
        """Watch the kernel's display messages (a no-op outside a kernel)."""
        if self._publisher is not None:
            self._publisher.register_hook(self._hook)

    def unregister(self) -> None:
        """Undo :meth:`register`."""
        if self._publisher is not None:
            self._publisher.unregister_hook(self._hook)
        self.reset()

    def reset(self) -> None:
        """Forget the clear of the cell that ended: the next top-level cell has a fresh output."""
        self._placeholder, self._pending = None, False
        self._unwatch_streams()

    def cell_ended(self, result: Any) -> None:
        """The cell's value or error was shown after its body: a pending clear has applied."""
        if result is not None and (result.result is not None or not result.success):
            self._consumed()

    def show(self, bundle: dict[str, str], cell: int | None = None) -> None:
        """Display ``bundle`` (mime type → data) as the report's own output.

        Args:
            bundle: the report, by mime type.
            cell: the number of the cell it reports on: in a terminal, whether that cell's
                output so far ends mid-line (then the report starts on a new line).
        """
        if not self.kernel:
            text = bundle.get("text/plain", "")
            print(("\n" if self._mid_line(cell) else "") + text)
            return
        placeholder = self._placeholder
        self._ours = True
        try:
            if self._pending and placeholder is not None:
                placeholder.update(bundle, raw=True, metadata=MARK)
            else:
                display(bundle, raw=True, metadata=MARK)
        finally:
            self._ours = False

    def _mid_line(self, cell: int | None) -> bool:
        # IPython 9 keeps each cell's stdout in history_manager.outputs; older ones don't.
        outputs = getattr(getattr(self.shell, "history_manager", None), "outputs", None)
        if cell is None or not isinstance(outputs, dict) or not outputs.get(cell):
            return False
        last = outputs[cell][-1]
        if last.output_type != "out_stream":
            return False
        chunks: list[str] = last.bundle.get("stream") or []
        return bool(chunks) and not chunks[-1].endswith("\n")

    # -- following the cell's outputs ------------------------------------------------------

    def _hook(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self._ours:
            return msg
        kind = msg.get("msg_type")
        if kind == "clear_output":
            self.clears += 1
            if msg.get("content", {}).get("wait"):
                self._ours = True
                try:
                    handle = display({"text/plain": ""}, raw=True, display_id=True, metadata=MARK)
                finally:
                    self._ours = False
                self._placeholder, self._pending = handle, True
                self._watch_streams()
            else:
                self._consumed()
        elif kind == "display_data":
            self._consumed()
        return msg

    def _consumed(self) -> None:
        self._pending = False
        self._unwatch_streams()

    def _watch_streams(self) -> None:
        """The next write to stdout or stderr applies the pending clear: notice it.

        ``write`` is wrapped on the stream object itself, so ``sys.stdout`` stays the same
        object; IPython 9 wraps it there too (``InteractiveShell._tee``), and that wrapper is
        put back as it was.
        """
        if self._watched:
            return
        for stream in (sys.stdout, sys.stderr):
            state = getattr(stream, "__dict__", None)
            if state is None:
                continue
            own = state.get("write", _NONE)
            write = stream.write

            def noticing(text: str, write: Any = write) -> Any:
                self._consumed()
                return write(text)

            state["write"] = noticing
            self._watched.append((stream, noticing, own))

    def _unwatch_streams(self) -> None:
        watched, self._watched = self._watched, []
        for stream, noticing, own in watched:
            state = stream.__dict__
            if state.get("write") is not noticing:
                continue  # wrapped again since: leave it
            if own is _NONE:
                del state["write"]
            else:
                state["write"] = own


_NONE = object()
