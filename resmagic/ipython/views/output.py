"""Where a report goes: an output of its own, never under the cell's pending clear.

In a Jupyter kernel a report is a ``display_data`` output (never glued onto a ``print(...,
end='')`` the cell left unfinished), marked with :data:`MARK` in its metadata so tools can
tell it from the cell's own outputs. A cell that ends with ``clear_output(wait=True)`` asks
the frontend to clear everything at the *next* output; a report displayed then would erase
the cell's result. So when the hook sees such a clear go by in a cell that will show a
report (:attr:`ReportOutput.expecting`) it first displays an empty placeholder, and the
report fills that placeholder in (an ``update_display_data``, which clears nothing) as long
as no output of the cell has come since. Any other cell gets no placeholder: its outputs
are what they are without resmagic. In a terminal the report is
printed, on a line of its own: after the cell's own ``print(..., end="")`` (IPython keeps
what went through ``sys.stdout``), and after a shell command (``!cmd``, an ``%alias``) whose
output never goes through ``sys.stdout`` (see :class:`FreshLine`).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from IPython.display import DisplayHandle, display

from resmagic.ipython.which_cell import running_cell

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
        self._system: list[tuple[str, Any, Any]] = []  # (name, our wrapper, the shell's own)
        self._raw_at: tuple[int | None, tuple[int, int]] | None = None
        """Where the cell's stdout stood when a shell command last wrote past it."""
        self.clears = 0
        """How many ``clear_output`` calls went by: a display made before one may be gone."""
        self.expecting = False
        """The running cell will show a report (text, a panel, watch's line): a pending
        clear gets a placeholder. Set by whoever opens such a cell, cleared by :meth:`reset`."""

    def register(self) -> None:
        """Watch the kernel's display messages; in a terminal, the shell's commands."""
        if self._publisher is not None:
            self._publisher.register_hook(self._hook)
        if not self.kernel:
            self._wrap_system()

    def unregister(self) -> None:
        """Undo :meth:`register`."""
        if self._publisher is not None:
            self._publisher.unregister_hook(self._hook)
        self._unwrap_system()
        self.reset()

    def reset(self) -> None:
        """Forget the clear of the cell that ended: the next top-level cell has a fresh output."""
        self._placeholder, self._pending = None, False
        self.expecting = False
        self._raw_at = None
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
            if self._raw_at is not None and self._raw_at == (cell, self._stdout_mark(cell)):
                start = fresh_line(sys.stdout)  # a command wrote last: its column is unknown
            else:
                start = "\n" if self._mid_line(cell) else ""
            print(start + text)
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
        outputs = self._outputs(cell)
        if not outputs:
            return False
        last = outputs[-1]
        if last.output_type != "out_stream":
            return False
        chunks: list[str] = last.bundle.get("stream") or []
        return bool(chunks) and not chunks[-1].endswith("\n")

    def _outputs(self, cell: int | None) -> list[Any]:
        # IPython 9 keeps each cell's stdout in history_manager.outputs; older ones don't.
        outputs = getattr(getattr(self.shell, "history_manager", None), "outputs", None)
        if cell is None or not isinstance(outputs, dict):
            return []
        return list(outputs.get(cell) or [])

    def _stdout_mark(self, cell: int | None) -> tuple[int, int]:
        """How much the cell has written through ``sys.stdout`` so far (outputs, chunks)."""
        outputs = self._outputs(cell)
        if not outputs:
            return (0, 0)
        return (len(outputs), len(outputs[-1].bundle.get("stream") or []))

    # -- shell commands in a terminal --------------------------------------------------------

    def _wrap_system(self) -> None:
        """Note each shell command (``!cmd``, ``%alias``): it writes to fd 1, past us.

        In terminal IPython ``shell.system`` is ``system_raw``: the command runs on the
        terminal itself, so neither ``sys.stdout`` nor IPython's output history sees what it
        printed, and a report after ``!printf 'out arg'`` was glued onto it (IPython's own
        tests with watch mode on: ``out arg2.01 ms, cpu ...``). Both names are wrapped on
        the shell object (``shell.system = shell.system_raw`` later still notes), where
        IPython's test harness replaces ``system`` too; each is put back as it was.
        """
        state = getattr(self.shell, "__dict__", None)
        if state is None or self._system:
            return
        for name in ("system", "system_raw"):
            command = getattr(self.shell, name, None)
            if command is not None:
                noted = self._noting(command)
                self._system.append((name, noted, state.get(name, _NONE)))
                state[name] = noted

    def _noting(self, command: Any) -> Any:
        def noted(*args: Any, **kwargs: Any) -> Any:
            try:
                return command(*args, **kwargs)
            finally:
                cell = running_cell(self.shell)
                self._raw_at = (cell, self._stdout_mark(cell))

        return noted

    def _unwrap_system(self) -> None:
        wrapped, self._system = self._system, []
        state = self.shell.__dict__
        for name, noted, own in wrapped:
            if state.get(name) is not noted:
                continue  # replaced again since: leave it
            if own is _NONE:
                del state[name]
            else:
                state[name] = own

    # -- following the cell's outputs ------------------------------------------------------

    def _hook(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self._ours:
            return msg
        kind = msg.get("msg_type")
        if kind == "clear_output":
            self.clears += 1
            if self.expecting and msg.get("content", {}).get("wait"):
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


def fresh_line(stream: Any) -> str:
    """What to print first so that the next text starts a line, whatever column we are in.

    On a terminal: as many spaces as it has columns, then a carriage return, as zsh does
    before its prompt. At column 0 the spaces fill the line exactly and the carriage return
    goes back to its start (the report overwrites the spaces); further in, they wrap onto a
    new line and the carriage return goes to the start of that one, leaving the command's
    last line as it was.
    Elsewhere (a pipe, a file) nothing can be overwritten: a newline, which leaves an empty
    line after a command whose output did end with one.
    """
    try:
        if stream.isatty():
            return " " * os.get_terminal_size(stream.fileno()).columns + "\r"
    except (AttributeError, OSError, ValueError):  # no fd (a captured stream), or closed
        pass
    return "\n"
