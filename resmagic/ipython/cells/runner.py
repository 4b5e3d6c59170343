"""IPython runs the cell; resmagic opens its scopes around it on IPython's own hooks.

One path for magic cells and watch mode. For each cell:

1. IPython transforms it; :class:`~resmagic.ipython.cells.header.HeaderTransformer` hides our
   ``%%`` lines and builds their layers (bad options: ``UsageError``, nothing runs).
2. ``pre_run_cell`` pushes a :class:`Frame` with those layers, or watch mode's.
3. IPython parses the cell and runs its AST transformers: ours (:meth:`CellRunner.visit`)
   enters the frame's scopes there, so a cell that does not compile opens none, as a plain
   cell would run nothing. A scope that cannot be entered rejects the cell before it runs.
4. IPython runs the body: tracebacks, ``Out[n]``, ``await``, ``__future__``, other cell
   magics are IPython's own.
5. ``post_run_cell`` closes the frame with the cell's outcome. A nested ``run_cell``
   (``%%capture``) is a nested frame, matched by its ``ExecutionInfo``.

Where IPython transforms a cell but runs it without the cell events (``%%time`` over our
magic, a silent cell), :meth:`CellRunner.visit` finds the header still pending and turns the
AST back into the ``run_cell_magic`` call IPython would have made: the magic method then
runs the body itself (:func:`resmagic.ipython.cells.stack.run_layers`).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable
from typing import Any, Protocol

from IPython.core.error import InputRejected, UsageError

from resmagic.ipython.cells.frame import Frame, count_escaped, depth_of
from resmagic.ipython.cells.header import HeaderTransformer
from resmagic.ipython.cells.options import LayerFactory
from resmagic.ipython.cells.stack import Layer, inside
from resmagic.ipython.views.output import ReportOutput
from resmagic.ipython.which_cell import running_cell
from resmagic.scopes.interrupts import held_back, state

__all__ = ["CellRunner", "Frame", "ScopeRefusedError", "Watching"]

_MAGIC = re.compile(r"%%(\w+)")


class Watching(Protocol):
    """What the runner asks of watch mode."""

    @property
    def active(self) -> bool:
        """True while every new cell is measured."""
        ...

    def layers(self, code: str = "") -> list[Layer] | None:
        """Fresh layers for a new cell (``code``: its source), or None when watch is off."""
        ...


class ScopeRefusedError(UsageError, InputRejected):
    """A scope could not be entered (a locked database, a log the disk refuses).

    IPython runs nothing and shows it as one line, ``UsageError: ...``, with no traceback.
    """

    def _render_traceback_(self) -> list[str]:
        # IPython shortens only an exception whose type *is* UsageError; a subclass got a
        # full traceback through our hooks' frames. Any exception may render itself.
        return [f"UsageError: {self}"]


class CellRunner:
    """Opens and closes each cell's scopes on ``pre_run_cell``, the AST hook, ``post_run_cell``.

    The cell events are registered only while something needs them (a header waiting for
    its cell, an open frame, watch mode), so a plain cell costs nothing. The AST hook is
    added for one cell at a time and takes itself out as it runs: while any AST hook is
    registered IPython walks the whole tree again after the hooks (``ast.fix_missing_locations``,
    1.2 ms for a 100-line cell).

    Args:
        shell: the IPython shell.
        ours: True for a cell magic name that is ours in this shell now.
        factory: builds the layers of a header's lines.
        watcher: watch mode: ``active``, and ``layers()`` for a new cell.
        output: where the reports go; told when a top-level cell ends.
        on_open: told when a frame's scopes are open, right before the body runs (the run
            store).
        on_close: told when a frame's scopes have closed and reported.
    """

    def __init__(
        self,
        shell: Any,
        ours: Callable[[str], bool],
        factory: LayerFactory,
        watcher: Watching,
        output: ReportOutput,
        *,
        on_open: Callable[[Frame], None] | None = None,
        on_close: Callable[[Frame], None] | None = None,
    ) -> None:
        self.shell = shell
        self.header = HeaderTransformer(
            ours, factory.options, factory.build, factory.expand, on_pending=self.arm
        )
        """The transformer holding the pending header of the cell about to run."""
        self.watcher = watcher
        self.output = output
        self.on_open = on_open
        self.on_close = on_close
        self.frames: list[Frame] = []
        self._armed = False

    # -- registration ----------------------------------------------------------------------

    def register(self) -> None:
        """Put the header transformer in place (the other hooks follow when needed)."""
        self.shell.input_transformers_cleanup.append(self.header)
        if self.watcher.active:
            self.arm()

    # Every hook and unregister() hold Ctrl-C back, so one that arrives there never leaves a
    # scope half open or half closed (reliability 2026-12-06 #3).

    @held_back()
    def unregister(self) -> None:
        """Close what is open (as interrupted) and remove every hook of ours."""
        while self.frames:
            self._close_top(_interrupted(), None)
        if self.header in self.shell.input_transformers_cleanup:
            self.shell.input_transformers_cleanup.remove(self.header)
        self.header.pending = None
        self._disarm()

    def arm(self) -> None:
        """Register the cell events and the AST hook (a header waits, or watch mode is on)."""
        self._want_ast_hook()
        if self._armed:
            return
        self._armed = True
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)

    def _want_ast_hook(self) -> None:
        if self not in self.shell.ast_transformers:
            self.shell.ast_transformers.append(self)

    def _leave_ast_hooks(self) -> None:
        # Called from inside IPython's loop over the hooks: dropping the last entry skips
        # no other hook, and with none left IPython does not walk the tree again. Not last
        # (another extension added one after us): stay, IPython walks the tree anyway.
        hooks = self.shell.ast_transformers
        if hooks and hooks[-1] is self:
            hooks.pop()

    def _disarm(self) -> None:
        if not self._armed:
            return
        self._armed = False
        if self in self.shell.ast_transformers:
            self.shell.ast_transformers.remove(self)
        for event, callback in (
            ("pre_run_cell", self.pre_run_cell),
            ("post_run_cell", self.post_run_cell),
        ):
            if callback in self.shell.events.callbacks[event]:
                self.shell.events.unregister(event, callback)

    def _disarm_if_idle(self) -> None:
        if not self.frames and self.header.pending is None and not self.watcher.active:
            self._disarm()

    # -- the hooks -------------------------------------------------------------------------

    @property
    def cell(self) -> int | None:
        """``In[n]`` of the innermost running cell (reports carry it)."""
        return self.frames[-1].cell if self.frames else running_cell(self.shell)

    def _interrupt_cell(self, info: Any) -> None:
        # A Ctrl-C raised from pre_run_cell would be shown by IPython, and the cell would
        # run: the AST hook raises it instead, before the body.
        if self.frames:
            self.frames[-1].interrupted = True
            self._want_ast_hook()

    @held_back(then=_interrupt_cell)
    def pre_run_cell(self, info: Any) -> None:
        """Push this cell's frame: its own header's layers, else watch mode's, else none."""
        if getattr(info, "store_history", False):
            # A cell that enters history is a top-level cell: a frame still open belongs to
            # a cell whose post_run_cell never came (IPython swallowed a failure there).
            while self.frames:
                self._close_top(_interrupted(), None)
        if not self.frames:
            self.output.reset()
        raw = getattr(info, "raw_cell", "") or ""
        header = self.header.take(raw)
        watched = False
        if header is not None:
            layers = header.layers
        elif self.watcher.active and self._watches(raw):
            layers, watched = self.watcher.layers(raw) or [], True
        else:
            layers = []
        self.frames.append(Frame(info, layers, running_cell(self.shell), watched))
        if layers:
            self._want_ast_hook()
            if any(layer.render is not None for layer in layers):
                self.output.expecting = True  # its report must not erase the cell's result

    @held_back()
    def visit(self, node: ast.Module) -> ast.Module:
        """IPython's AST hook: enter the running cell's scopes right before its body runs."""
        pending = self.header.pending
        if pending is not None:
            if not pending.is_cell_of(node):
                return node  # e.g. %%timeit's setup line: the header's own cell comes next
            self.header.pending = None
            self._leave_ast_hooks()
            return pending.as_magic_call()
        self._leave_ast_hooks()
        frame = self.frames[-1] if self.frames else None
        if frame is not None and frame.interrupted:
            frame.interrupted = False
            raise KeyboardInterrupt  # it arrived as the cell started (see pre_run_cell)
        if frame is None or frame.opened or not frame.layers:
            return node
        frame.opened = True
        scopes = inside(self.shell, frame.layers)
        try:
            scopes.__enter__()
        except UsageError as exc:
            raise ScopeRefusedError(str(exc)) from None
        except Exception as exc:  # never let IPython unregister us: refuse this cell instead
            msg = f"resmagic could not open the cell's scopes: {exc!r}"
            raise ScopeRefusedError(msg) from None
        frame.scopes = scopes
        _tell(self.on_open, frame)
        if state.noted_at is not None:  # a Ctrl-C held back while they opened: close them
            self._close(frame, KeyboardInterrupt(), None)  # again; held_back raises it
            frame.scopes = None
        return node

    def _fail_cell(self, result: Any) -> None:
        # A Ctrl-C raised from post_run_cell would only be shown: fail the cell as a Ctrl-C
        # in IPython's own code after the body does.
        interrupt = KeyboardInterrupt()
        if result is not None and result.error_in_exec is None:
            result.error_in_exec = interrupt
        self.shell.showtraceback((KeyboardInterrupt, interrupt, None))

    @held_back(then=_fail_cell)
    def post_run_cell(self, result: Any) -> None:
        """Close the cell's frame (and any above it, as interrupted) with its outcome."""
        if result is None:  # ipykernel: the cell's task was cancelled
            if self.frames:
                self._close_top(_interrupted(), None)
            return
        depth = depth_of(self.frames, getattr(result, "info", None))
        if depth is None:
            return
        count_escaped(self.shell, self.frames[depth], result)
        while len(self.frames) > depth + 1:
            self._close_top(_interrupted(), None)
        error = result.error_in_exec or result.error_before_exec
        if depth == 0:
            self.output.cell_ended(result)
        self._close_top(error, result)
        if depth == 0:
            self.output.reset()
            self._disarm_if_idle()

    # -- helpers ---------------------------------------------------------------------------

    def _watches(self, raw: str) -> bool:
        # Never inside a cell watch mode already measures (a %%capture body is part of it),
        # nor a cell of our own line magic only (`%resmagic watch off`, `%resmagic status`).
        return (
            not any(frame.watched for frame in self.frames)
            and not _starts_with_ours(raw, self.header.ours)
            and not _only_our_line_magic(raw)
        )

    def _close_top(self, error: BaseException | None, result: Any) -> None:
        # Closed while still on the stack: its reports take the frame's cell number (IPython
        # < 9.8 has already moved the count on by post_run_cell).
        try:
            self._close(self.frames[-1], error, result)
        finally:
            self.frames.pop()

    def _close(self, frame: Frame, error: BaseException | None, result: Any) -> None:
        scopes = frame.scopes
        if scopes is None:
            return
        try:
            if error is None:
                scopes.__exit__(None, None, None)
            else:
                scopes.__exit__(type(error), error, error.__traceback__)
        except Exception as exc:
            # A commit that fails, a full disk under the log: the cell fails, as it would
            # have with the same code written out in it (Run All stops here).
            if result is not None and result.error_in_exec is None:
                result.error_in_exec = exc
            self.shell.showtraceback((type(exc), exc, exc.__traceback__))
        finally:
            _tell(self.on_close, frame)


def _tell(callback: Callable[[Frame], None] | None, frame: Frame) -> None:
    if callback is None:
        return
    try:
        callback(frame)
    except Exception as exc:  # recording a cell must never change its outcome
        print(f"resmagic: could not record the cell: {exc!r}", file=sys.stderr)


def _interrupted() -> KeyboardInterrupt:
    return KeyboardInterrupt("the cell never finished")


def _starts_with_ours(raw: str, ours: Callable[[str], bool]) -> bool:
    text = raw.lstrip()
    match = _MAGIC.match(text) if text.startswith("%%") else None
    return match is not None and ours(match[1])


def _only_our_line_magic(raw: str) -> bool:
    if not raw.lstrip().startswith("%resmagic"):
        return False
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    return all(line == "%resmagic" or line.startswith("%resmagic ") for line in lines)
