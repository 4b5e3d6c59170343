"""Watch mode: every cell measured, no magic needed.

The runner (:mod:`resmagic.ipython.cells.runner`) asks :meth:`Watcher.layers` for each new cell and
opens them exactly as it opens a magic cell's own layers. A cell with a resmagic magic of
its own is left to that magic (never measured twice), and so is a cell run inside a watched
cell (a ``%%capture`` body is part of the cell that captures it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from resmagic.config import settings
from resmagic.errors import ResmagicError
from resmagic.ipython.cells.options import SCOPES, LayerFactory
from resmagic.ipython.cells.stack import Layer
from resmagic.ipython.views.notes import Notes
from resmagic.ipython.views.text import why_line
from resmagic.ipython.views.watch_line import cell_record, compact_line, rows_of, worth_panel
from resmagic.ipython.views.watch_log import WatchLog
from resmagic.probes.devices import host_notes, not_own_gpu
from resmagic.report import GpuReport, Report, TimingReport
from resmagic.scopes.gpu import gpu_scope
from resmagic.scopes.logfile import resolve_log_path
from resmagic.units import format_seconds

if TYPE_CHECKING:
    from resmagic.ipython.views.cell_panel import CellPanel

__all__ = ["SCOPES", "WatchOptions", "WatchOutput", "Watcher"]


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
    """Which layers every new cell of one shell runs inside, while watch mode is on.

    Args:
        factory: builds each cell's layers.
        notes: shows their reports (one line, or the full panel).
    """

    def __init__(self, factory: LayerFactory, notes: Notes) -> None:
        self.factory = factory
        self.notes = notes
        self.options: WatchOptions | None = None
        self.log: WatchLog | None = None
        """The ``--log`` file of this watch, with its counts."""
        self._output: WatchOutput | None = None

    @property
    def active(self) -> bool:
        """True while every new cell is measured."""
        return self.options is not None

    def start(self, options: WatchOptions) -> None:
        """Measure every cell from the next one on; checks the options now (UsageError).

        The layers are built here, once (issue 26, C6): each cell runs the same scopes, a
        new run of each. The cell runner must then be armed
        (:meth:`resmagic.ipython.session.Session.watch` does both).
        """
        # Bad options are refused here; each cell then runs these layers' scopes again.
        layers = [self.factory.build(name, quiet=True, **spec) for name, spec in options.specs()]
        if options.panel and any(layer.magic == "gpu_scope" for layer in layers):
            self.notes.load_panel()  # the first long cell's panel shows on time
        if options.log is not None:  # `--log ''` is a mistake too, not "no log"
            _check_writable(options.log)
        self.log = WatchLog(resolve_log_path(options.log)) if options.log else None
        self._output = WatchOutput(self.notes, layers, panel=options.panel, log=self.log)
        self.options = options

    def stop(self) -> None:
        """Measure no new cell; the cell running now is still closed by ``post_run_cell``."""
        self.options = None
        self.log = None
        self._output = None  # a running cell keeps its layers (and its panel) to its end

    def layers(self, code: str = "") -> list[Layer] | None:
        """The layers for a new cell (``code``: its source), or None when watch is off.

        The layers share one output (:class:`WatchOutput`): a compact line, or the full
        panel for a cell that ran long or moved memory; and one log record per cell.
        """
        output = self._output
        if self.options is None or output is None:
            return None
        return output.begin(code)


class WatchOutput:
    """Gives the layers of watched cells a single output per cell (and one log line).

    Made once per ``%resmagic watch on``, with its layers; :meth:`begin` readies them for
    each cell.

    Args:
        notes: makes the panel and the ``held by`` lines, and shows the output.
        layers: the layers, built ``quiet``; their render callbacks are set here.
        panel: whether a kernel shows the live panel for a long cell.
        log: the JSON-lines file each cell appends one record to, or None.
    """

    def __init__(
        self,
        notes: Notes,
        layers: Sequence[Layer],
        *,
        panel: bool,
        log: WatchLog | None,
    ) -> None:
        self.notes, self.log, self.panel = notes, log, panel
        self.layers = list(layers)
        self.code = ""
        """The running cell's source, hashed for the log."""
        self.gpu = next((lay for lay in layers if lay.magic == "gpu_scope"), None)
        self.timed = next((lay for lay in layers if lay.magic == "timed"), None)
        self.view: CellPanel | None = None
        if layers:
            layers[-1].render = self.render  # renders run after every scope has closed

    def begin(self, code: str) -> list[Layer]:
        """The layers for a new cell: as if built afresh, and its own live panel.

        Each scope forgets its last report (a cell whose scopes never close shows no line,
        as a fresh scope would), the previous cell's panel stops following the ``gpu_scope``
        (a reused scope must not feed every cell's panel), and the namespace that names what
        holds memory is the shell's now.
        """
        self.code = code
        for layer in self.layers:
            layer.scope.report = None
        view, self.view = self.view, None
        if view is not None:
            view.let_go()
        gpu = self.gpu
        if gpu is not None and isinstance(gpu.scope, gpu_scope):
            namespace = self.notes.shell.user_ns
            if gpu.scope.held_by is not namespace:
                gpu.scope.held_by = namespace
            if self.panel:
                self.view = self.notes.panel(gpu.scope, "watch", delay=settings.watch_panel_s)
                if self.view is not None:
                    gpu.start, gpu.stop = self.view.start, self.view.stop
                else:
                    gpu.start = gpu.stop = None
        return list(self.layers)

    def render(self, _last: Report) -> None:
        """Show the cell's line (or its full panel) and append its log record.

        A log the disk refuses never costs the cell its line (reliability 2026-12-06 #6):
        the first refusal is said under the line, later ones are counted.
        """
        gpu = self._report(self.gpu, GpuReport)
        timing = self._report(self.timed, TimingReport)
        held = [*(self.notes.holder_lines(gpu) if gpu is not None else []), *self._log(gpu, timing)]
        view = self.view
        if gpu is not None and view is not None and (view.shown or worth_panel(gpu)):
            # The timing goes in the panel's head: one output, no separate "timed wall ..."
            # line under it (UX audit 2026-12-06 P3-1).
            view.finish(view.summary(gpu, held, _timing(timing)))
            return
        if view is not None:
            view.finish(None)
        lines = [compact_line(gpu, timing) + self._last_time(timing or gpu)]
        happened, reasons = host_notes(gpu.notes if gpu is not None else ())
        lines += [f"  {note}" for note in happened]
        if gpu is not None and reasons and all(not_own_gpu(r.name) for r in rows_of(gpu)):
            note = self.notes.say_once(why_line(reasons))
            lines += [note] if note else []
        cell = (timing or gpu).cell if (timing or gpu) is not None else None
        self.notes.output.show({"text/plain": "\n".join([*lines, *held])}, cell)

    def _log(self, gpu: GpuReport | None, timing: TimingReport | None) -> list[str]:
        """Append the cell's record to the ``--log`` file; the log's note, if it has one."""
        if self.log is None:
            return []
        record = cell_record(gpu, timing, self.code)
        note = self.log.append(record) if record is not None else None
        return [f"  {note}"] if note else []

    def _last_time(self, report: Report | None) -> str:
        last_time = self.notes.last_time
        if report is None or last_time is None:
            return ""
        return last_time(report, peak_from="gpu_scope")  # the cell's time, gpu_scope's peak

    @staticmethod
    def _report(layer: Layer | None, kind: type[Any]) -> Any:
        report = layer.scope.report if layer is not None else None
        return report if isinstance(report, kind) else None


def _timing(timing: TimingReport | None) -> str:
    """``wall 1.12 s, cpu 1.72 s`` for a watched cell's panel head, "" without a timing."""
    if timing is None:
        return ""
    return f"wall {format_seconds(timing.wall_s)}, cpu {format_seconds(timing.cpu_s)}"


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
