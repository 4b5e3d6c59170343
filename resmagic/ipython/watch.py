"""Watch mode: every cell measured, no magic needed.

``pre_run_cell`` opens the chosen scopes for the cell, ``post_run_cell`` closes them with the
cell's outcome (``error_in_exec`` / ``error_before_exec``), exactly as the stacked magics
would. A cell that starts with one of our magics is left to that magic (never measured
twice). If a cell opened scopes and never reached ``post_run_cell`` (IPython swallows a
failure or Ctrl-C inside event callbacks), the next ``pre_run_cell`` first closes what was
left open, with status ``"interrupted"``.

OOM reclaim is off in watch mode: by ``post_run_cell`` IPython has already formatted the
traceback, and on Python < 3.13 frames can no longer be freed (CPython #113939). Use
``%%gpu_scope`` on a cell that may run out of memory.
"""

from __future__ import annotations

import os
import shlex
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from resmagic.ipython.cell import Layer, inside, running_cell
from resmagic.scopes.experiment import resolve_log_path

if TYPE_CHECKING:
    from resmagic.ipython.magics import ResMagics

__all__ = ["SCOPES", "WatchOptions", "Watcher"]

SCOPES = ("gpu_scope", "timed")


@dataclass(frozen=True)
class WatchOptions:
    """What ``%resmagic watch on`` asked for."""

    scopes: tuple[str, ...] = SCOPES
    log: str | None = None
    panel: bool = True

    def lines(self) -> list[tuple[str, str]]:
        """(magic, option line) per scope, outermost first: the log records the others."""
        out = [("experiment_log", f"{shlex.quote(self.log)} -q")] if self.log else []
        for name in self.scopes:
            line = "--reclaim never" if name == "gpu_scope" else ""
            if name == "gpu_scope" and not self.panel:
                line += " --no-panel"
            out.append((name, line))
        return out


class Watcher:
    """Runs every cell of one shell inside the scopes of :class:`WatchOptions`."""

    def __init__(self, shell: Any, magics: ResMagics) -> None:
        self.shell = shell
        self.magics = magics
        self.options: WatchOptions | None = None
        self._open: AbstractContextManager[None] | None = None
        self._registered = False
        self.cell: int | None = None
        """``In[n]`` of the cell whose scopes are open: its reports carry it, also when
        closed in ``post_run_cell``, where IPython < 9.8 has already moved the count on."""

    @property
    def active(self) -> bool:
        """True while every new cell is measured."""
        return self.options is not None

    def start(self, options: WatchOptions) -> None:
        """Measure every cell from the next one on; checks the options now (UsageError)."""
        for name, line in options.lines():
            self.magics.layer(name, line)  # build once to refuse bad options right away
        if options.log:
            _check_writable(options.log)
        self.options = options
        if not self._registered:
            self.shell.events.register("pre_run_cell", self.pre_run_cell)
            self.shell.events.register("post_run_cell", self.post_run_cell)
            self._registered = True

    def stop(self) -> None:
        """Measure no new cell; the cell running now is still closed by ``post_run_cell``."""
        self.options = None

    def close(self) -> None:
        """Stop, close anything left open, and unregister the hooks (``%unload_ext``)."""
        self.stop()
        self._close_open(None, interrupted=True)
        self._unregister()

    def _unregister(self) -> None:
        if self._registered:
            self.shell.events.unregister("pre_run_cell", self.pre_run_cell)
            self.shell.events.unregister("post_run_cell", self.post_run_cell)
            self._registered = False

    def pre_run_cell(self, info: Any) -> None:
        """Close a cell left open, then open the scopes for this cell."""
        self._close_open(None, interrupted=True)
        if self.options is None or self._has_own_magic(getattr(info, "raw_cell", "")):
            return
        layers: list[Layer] = [self.magics.layer(n, line) for n, line in self.options.lines()]
        self.cell = running_cell(self.shell)
        scopes = inside(self.shell, layers)
        try:
            scopes.__enter__()
        except BaseException:
            self.cell = None
            raise
        self._open = scopes

    def post_run_cell(self, result: Any) -> None:
        """Close this cell's scopes with its outcome; unhook if watch mode was switched off."""
        if result is None:  # ipykernel passes None when the cell's task was cancelled
            self._close_open(None, interrupted=True)
        else:
            self._close_open(result.error_before_exec or result.error_in_exec, interrupted=False)
        if self.options is None:
            self._unregister()

    def _close_open(self, error: BaseException | None, *, interrupted: bool) -> None:
        scopes, self._open = self._open, None
        if scopes is None:
            return
        if interrupted:
            error = KeyboardInterrupt("the cell never finished")
        try:
            if error is None:
                scopes.__exit__(None, None, None)
            else:
                scopes.__exit__(type(error), error, error.__traceback__)
        finally:
            self.cell = None

    def _has_own_magic(self, raw_cell: str) -> bool:
        first = raw_cell.lstrip().split(None, 1)[0] if raw_cell.strip() else ""
        return first.startswith("%%") and first[2:] in self.magics.builders


def _check_writable(path: str) -> None:
    # Opening the log is deferred to each cell; refuse an unopenable one now, not 100 times.
    full = resolve_log_path(path)
    try:
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        msg = f"%resmagic watch: cannot write the log {path!r}: {exc.strerror or exc}"
        raise UsageError(msg) from None


def parse_watch(args: list[str]) -> tuple[bool, WatchOptions]:
    """Read ``[on|off] [--scopes a,b] [--log PATH] [--no-panel]``; UsageError when wrong."""
    on, log, panel = True, None, True
    scopes: tuple[str, ...] = SCOPES
    rest = list(args)
    if rest and rest[0] in ("on", "off"):
        on = rest.pop(0) == "on"
    while rest:
        flag = rest.pop(0)
        if flag == "--no-panel":
            panel = False
        elif flag in ("--scopes", "--log") and rest:
            value = rest.pop(0)
            if flag == "--log":
                log = value
            else:
                scopes = tuple(s.strip() for s in value.split(",") if s.strip())
                unknown = [s for s in scopes if s not in SCOPES]
                if unknown or not scopes:
                    msg = f"--scopes takes a comma list of {', '.join(SCOPES)}; got {value!r}"
                    raise UsageError(msg)
        else:
            msg = (
                f"%resmagic watch: unexpected {flag!r}; usage: %resmagic watch [on|off]"
                " [--scopes gpu_scope,timed] [--log PATH] [--no-panel]"
            )
            raise UsageError(msg)
    return on, WatchOptions(scopes, log, panel)
