"""The live ipywidgets panel under a ``%%gpu_scope`` cell.

A cell's panel, from start to end:

1. A ``%%gpu_scope`` cell's panel holds its place from the start: a static "running" form
   of the panel (HTML, ``text/plain`` ``gpu_scope running``), so the panel is the cell's
   first output however long the cell runs. In watch mode nothing is shown at first: a cell
   shorter than ``settings.watch_panel_s`` gets its one compact line when it ends.
2. On the first sample taken one sample interval in (``watch_panel_s`` in watch mode), the
   sampler thread puts an HTML widget there (with the same markup as ``text/html`` for
   frontends without the widget manager); later samples set its value (earlier ones only
   count toward the peak). A short cell never pays for a widget. The thread does so inside
   a copy of the cell's context, so the messages carry the running cell's parent header
   (ipykernel >= 7 routes by it) and reach the browser now, not when the cell ends.
3. When the cell ends, that output is replaced in place by a static summary (the same
   markup as ``text/html``, the text line as ``text/plain``); then the widget is closed. A
   static output survives kernel restarts, nbconvert, GitHub and nbval; a closed widget's
   output would read "model not found". Where the cell cleared its output since, the
   summary is a new output instead.

nbval ignores ``update_display_data``: it compares the live display's ``text/plain``
(``gpu_scope running``) with the saved summary's, so a notebook checked with nbval needs a
sanitizer for the report lines (README, "Notebooks under nbval").
"""

from __future__ import annotations

import contextvars
import html
import importlib.util
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from IPython.display import DisplayHandle, display

from resmagic.config import settings
from resmagic.ipython.views.held import cell_holds
from resmagic.ipython.views.output import MARK, ReportOutput
from resmagic.ipython.views.panel_html import (
    PanelRow,
    PanelView,
    left_allocated,
    render,
    rows_from,
)
from resmagic.ipython.views.text import render_report, why_line
from resmagic.probes.reading import DeviceMemory
from resmagic.probes.table import WIDE_SOURCES
from resmagic.report import GpuReport, Report
from resmagic.scopes.gpu import gpu_scope

__all__ = ["CellPanel", "available", "close_all", "import_widgets"]

_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def available(shell: object) -> bool:
    """True in a Jupyter kernel that has ipywidgets: where a live panel can show."""
    return getattr(shell, "kernel", None) is not None and _has_widgets()


_widgets_found: bool | None = None


def _has_widgets() -> bool:
    global _widgets_found
    if _widgets_found is None:
        _widgets_found = importlib.util.find_spec("ipywidgets") is not None
    return _widgets_found


_parts: tuple[Any, Any] | None = None
_parts_lock = threading.Lock()
_imported = threading.Event()
"""Set once ``ipywidgets`` is imported: the sampler thread makes a widget only then."""


def import_widgets() -> None:
    """Import ipywidgets (0.2-1 s on 2 cores) here, never on the sampler thread.

    The sampler thread also feeds the memory guard: an import there held every sample of
    the first panel cell of a kernel back until it was done (4 live updates in a 1 s cell
    instead of 9, under load).
    """
    if not _imported.is_set():
        import ipywidgets  # noqa: F401  # the panel's own dependency, loaded with the first panel

        _imported.set()


def _import_widgets_aside() -> None:
    """Start importing ipywidgets on a thread of its own, unless it is done already."""
    if not _imported.is_set():
        threading.Thread(target=import_widgets, name="resmagic-widgets", daemon=True).start()


def _html_widget(value: str) -> Any:
    """An ``ipywidgets.HTML`` sharing one layout and style model with every other panel.

    Each widget would otherwise open (and leave open) two more comms of its own.
    """
    global _parts
    import ipywidgets
    from ipywidgets.widgets.widget_string import HTMLStyle

    with _parts_lock:
        if _parts is None:
            _parts = (ipywidgets.Layout(), HTMLStyle())
        layout, style = _parts
    return ipywidgets.HTML(value=value, layout=layout, style=style)


def _view_bundle(widget: Any, text: str) -> dict[str, Any]:
    """A display bundle of ``widget`` with a fixed ``text/plain``, so saved outputs do not drift."""
    return {_VIEW_MIME: widget._repr_mimebundle_()[_VIEW_MIME], "text/plain": text}


def close_all() -> None:
    """Close the models panels share (``%unload_ext``)."""
    global _parts
    with _parts_lock:
        parts, _parts = _parts, None
    for model in parts or ():
        model.close()


class CellPanel:
    """The live panel of one ``gpu_scope`` run: :meth:`start`, :meth:`stop`, :meth:`finish`.

    Args:
        scope: the scope whose devices it shows, not yet entered; :meth:`start` runs once it
            has been.
        magic: the title, e.g. ``"gpu_scope"``.
        said: "no GPU row" text lines already shown in this session (not repeated).
        output: shows the static summary where no live widget holds its place; by default
            a plain display.
        delay: seconds into the cell before the live widget appears (None: one sample
            interval).
        expected: how long the cell took last time, asked while it runs (the run store
            answers once it has looked it up; None until then), for the progress bar.
    """

    def __init__(
        self,
        scope: gpu_scope,
        magic: str = "gpu_scope",
        said: set[str] | None = None,
        output: ReportOutput | None = None,
        delay: float | None = None,
        expected: Callable[[], float | None] | None = None,
    ):
        self.scope = scope
        self.magic = magic
        self.delay = delay
        self.expected = expected
        self._said = said
        self._output = output
        self._lock = threading.Lock()
        self._view: PanelView | None = None
        self._widget: Any = None
        self._handle: DisplayHandle | None = None
        self._context: contextvars.Context | None = None
        self._live = False
        self._clears = 0
        self.error: str | None = None
        """Why the live view stopped early, if it did (the static summary still shows)."""
        scope.follow(self._sampled)  # the scope samples while open; its peak covers ours
        self._t0 = 0.0
        if delay is None:
            import_widgets()  # a magic cell shows its widget at once: before its scope opens
        else:
            _import_widgets_aside()  # a watched cell may never need it: ready by watch_panel_s

    @property
    def widget(self) -> Any:
        """The live ``ipywidgets.HTML``: None until it appears and after :meth:`finish`."""
        return self._widget

    @property
    def shown(self) -> bool:
        """True once the live widget has appeared in the cell's output."""
        return self._widget is not None

    def start(self) -> None:
        """Follow the sampler from now on (main thread, right after the scope opened)."""
        readings = self.scope.opened()
        notes = self.scope.why_no_gpu({r.source for r in readings})
        if self._said is not None and why_line(notes) in self._said:
            notes = ()  # said once in this session already
        view = PanelView(self.magic, rows_from(readings), notes=notes)
        self._t0 = time.perf_counter()
        self._clears = self._output.clears if self._output is not None else 0
        self._context = contextvars.copy_context()
        self._view, self._live = view, True
        if self.delay is None:
            # A magic cell's panel holds its place from the start (its static "running"
            # form), so it is the cell's first output however long the cell runs: a saved
            # notebook and an nbval run list the outputs in the same order.
            markup = render(view)
            bundle = {"text/html": markup, "text/plain": f"{self.magic} running"}
            self._handle = display(bundle, raw=True, display_id=True, metadata=MARK)

    def let_go(self) -> None:
        """Stop following the scope: watch mode's next cell runs the same one (issue 26, C6)."""
        self.scope.unfollow(self._sampled)

    def stop(self) -> None:
        """Take no more samples; the widget keeps its last state until :meth:`finish`."""
        with self._lock:
            self._live = False

    def summary(
        self, report: Report, extra: Sequence[str] = (), timing: str = ""
    ) -> dict[str, str] | None:
        """The static summary of ``report``: the panel's markup and its text line.

        ``extra`` lines (``held by: ...``) go under both. ``timing`` (``wall 1.1 s, cpu
        1.7 s``, a watched cell's) replaces the head's time and ends the text line. None for
        a report of another scope.
        """
        if not isinstance(report, GpuReport):
            return None
        view = self._view if self._view is not None else PanelView(self.magic, [])
        view.close(report)
        view.timing = timing
        name_what_is_left(view, self.scope.held_by)
        text = render_report(report, self._said)
        if timing:
            first, sep, rest = text.partition("\n")
            text = f"{first} · {timing}{sep}{rest}"
        if why_line(report.notes) not in text:
            view.notes = ()  # said once in this session already
        lines = [f"<div class='rm-extra'>{html.escape(line)}</div>" for line in extra]
        markup = render(view, "".join(lines))
        text = "\n".join([text, *extra])
        return {"text/html": markup, "text/plain": text}

    def finish(self, bundle: dict[str, str] | None) -> None:
        """Put ``bundle`` where the live widget is (or as a new output) and close the widget."""
        self.stop()
        widget, handle = self._widget, self._handle
        self._widget = self._handle = None
        cleared = self._output is not None and self._output.clears != self._clears
        if bundle is not None:
            if handle is not None and not cleared:
                handle.update(bundle, raw=True, metadata=MARK)  # in place: one output
            elif self._output is not None:
                self._output.show(bundle)
            else:
                display(bundle, raw=True, metadata=MARK)
        if widget is not None:
            # nbclient (papermill) keeps every model's last state in the saved notebook,
            # closed or not: leave it a small one.
            widget.value = ""
            widget.close()
        if self.error is not None:
            print(f"resmagic: the live panel stopped early: {self.error}", file=sys.stderr)

    # -- the sampler thread ----------------------------------------------------------------

    def _sampled(self, now: float, readings: Sequence[DeviceMemory]) -> None:
        with self._lock:
            view, context = self._view, self._context
            if not self._live or view is None or context is None:
                return  # the cell ended while this sample was taken
            try:
                self._fold(view, readings)
                if view.expected_s is None and self.expected is not None:
                    view.expected_s = self.expected()
                delay = settings.sample_interval if self.delay is None else self.delay
                if self._widget is None and (view.elapsed_s < delay or not _imported.is_set()):
                    # Also covers a sampler thread lingering from an earlier cell that
                    # samples a new watch at once: a young cell gets no widget.
                    return
                # Under the lock, so a late sample cannot overwrite the final state; in the
                # cell's context, so the messages go to the cell's output.
                context.run(self._show_live, render(view))
            except Exception as exc:  # never into the cell: stop the live view, say so at the end
                self._live = False
                self.error = f"{type(exc).__name__}: {exc}"

    def _fold(self, view: PanelView, readings: Sequence[DeviceMemory]) -> None:
        rows = {(r.name, r.source): r for r in view.rows}
        for reading in readings:
            row = rows.get((reading.name, reading.source))
            if row is None:  # a device torch initialised during the cell: 0 before
                row = PanelRow.opened(reading)
                row.before = 0
                view.rows.append(row)
            else:
                row.observe(reading)
        view.elapsed_s = time.perf_counter() - self._t0

    def _show_live(self, markup: str) -> None:
        if self._widget is not None:
            self._widget.value = markup
            return
        self._widget = _html_widget(markup)
        bundle = _view_bundle(self._widget, f"{self.magic} running")
        bundle["text/html"] = markup  # what a frontend without the widget manager shows
        if self._handle is not None:
            self._handle.update(bundle, raw=True, metadata=MARK)
        else:
            self._handle = display(bundle, raw=True, display_id=True, metadata=MARK)


def name_what_is_left(view: PanelView, held_by: Mapping[str, Any] | None) -> None:
    """Fill ``named`` of the rows the cell left memory on: what its own variables hold there.

    The orange Δ says "your variables hold this" (UX audit 2026-12-06 P2-3); one walk of
    the variables the cell bound (:func:`~resmagic.ipython.views.held.cell_holds`), made only
    for a cell that left more than the noise in use (:func:`left_allocated`).
    """
    left = [
        row
        for row in view.rows
        if row.source not in WIDE_SOURCES
        and row.after is not None
        and left_allocated(row.before, row.after, row.total)
    ]
    holds = cell_holds(held_by) if left else None
    for row in left:
        row.named = holds.get(row.name, 0) if holds is not None else None
