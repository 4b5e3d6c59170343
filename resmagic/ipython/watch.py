"""Watch mode: every cell measured, no magic needed.

The runner (:mod:`resmagic.ipython.cells.runner`) asks :meth:`Watcher.layers` for each new cell and
opens them exactly as it opens a magic cell's own layers. A cell with a resmagic magic of
its own is left to that magic (never measured twice), and so is a cell run inside a watched
cell (a ``%%capture`` body is part of the cell that captures it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from resmagic.errors import ResmagicError
from resmagic.ipython.cells.stack import Layer
from resmagic.ipython.views.watch_line import WatchOutput
from resmagic.ipython.views.watch_log import WatchLog
from resmagic.scopes.logfile import resolve_log_path

if TYPE_CHECKING:
    from resmagic.ipython.cells.options import LayerFactory

__all__ = ["SCOPES", "WatchOptions", "Watcher"]

SCOPES = ("gpu_scope", "timed")


@dataclass(frozen=True)
class WatchOptions:
    """What ``%resmagic watch on`` asked for."""

    scopes: tuple[str, ...] = SCOPES
    log: str | None = None
    panel: bool = True

    def specs(self) -> list[tuple[str, dict[str, Any]]]:
        """(magic, options) per scope, as :meth:`LayerFactory.build` takes them."""
        return [(name, {}) for name in self.scopes]


class Watcher:
    """Which layers every new cell of one shell runs inside, while watch mode is on."""

    def __init__(self, factory: LayerFactory) -> None:
        self.factory = factory
        self.options: WatchOptions | None = None
        self.log: WatchLog | None = None
        """The ``--log`` file of this watch, with its counts."""
        self.on_start: Callable[[], None] | None = None
        """Called when watch mode starts (the runner registers its cell hooks)."""

    @property
    def active(self) -> bool:
        """True while every new cell is measured."""
        return self.options is not None

    def start(self, options: WatchOptions) -> None:
        """Measure every cell from the next one on; checks the options now (UsageError)."""
        for name, spec in options.specs():
            self.factory.build(name, **spec)  # build once to refuse bad options right away
        if options.log is not None:  # `--log ''` is a mistake too, not "no log"
            _check_writable(options.log)
        self.log = WatchLog(resolve_log_path(options.log)) if options.log else None
        self.options = options
        if self.on_start is not None:
            self.on_start()

    def stop(self) -> None:
        """Measure no new cell; the cell running now is still closed by ``post_run_cell``."""
        self.options = None
        self.log = None

    def layers(self, code: str = "") -> list[Layer] | None:
        """Fresh layers for a new cell (``code``: its source), or None when watch is off.

        The layers share one output (:class:`WatchOutput`): a compact line, or the full
        panel for a cell that ran long or moved memory; and one log record per cell.
        """
        options = self.options
        if options is None:
            return None
        layers = [self.factory.build(name, quiet=True, **spec) for name, spec in options.specs()]
        WatchOutput(self.factory, layers, panel=options.panel, code=code, log=self.log)
        return layers


def _check_writable(path: str) -> None:
    # Opening the log is deferred to each cell; refuse an unopenable one now, not 100 times.
    # resolve_log_path refuses a folder, a device or a FIFO (opening one would hang here)
    # with a PathError: a UsageError too, not a traceback (reliability 2026-12-06 #9).
    try:
        full = resolve_log_path(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "a", encoding="utf-8"):
            pass
    except ResmagicError as exc:
        msg = f"%resmagic watch --log: {exc}"
        raise UsageError(msg) from None
    except OSError as exc:
        msg = f"%resmagic watch: cannot write the log {path!r}: {exc.strerror or exc}"
        raise UsageError(msg) from None
