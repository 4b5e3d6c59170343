"""Watch mode: every cell measured, no magic needed.

The runner (:mod:`resmagic.ipython.runner`) asks :meth:`Watcher.layers` for each new cell and
opens them exactly as it opens a magic cell's own layers. A cell with a resmagic magic of
its own is left to that magic (never measured twice), and so is a cell run inside a watched
cell (a ``%%capture`` body is part of the cell that captures it).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from resmagic.ipython.cell import Layer
from resmagic.scopes.logfile import resolve_log_path

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
            out.append((name, "--no-panel" if name == "gpu_scope" and not self.panel else ""))
        return out


class Watcher:
    """Which layers every new cell of one shell runs inside, while watch mode is on."""

    def __init__(self, magics: ResMagics) -> None:
        self.magics = magics
        self.options: WatchOptions | None = None
        self.on_start: Callable[[], None] | None = None
        """Called when watch mode starts (the runner registers its cell hooks)."""

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
        if self.on_start is not None:
            self.on_start()

    def stop(self) -> None:
        """Measure no new cell; the cell running now is still closed by ``post_run_cell``."""
        self.options = None

    def layers(self) -> list[Layer] | None:
        """Fresh layers for a new cell, or None when watch mode is off."""
        if self.options is None:
            return None
        return [self.magics.layer(name, line) for name, line in self.options.lines()]


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
