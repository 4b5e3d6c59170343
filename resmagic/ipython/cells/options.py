"""Layers: a resmagic magic's options, parsed once, and the scope and views built from them.

One factory for the option lines of magic cells and for watch mode's structured options.
"""

from __future__ import annotations

import argparse
import functools
import keyword
import os
import re
from collections.abc import Callable
from typing import Any, Protocol

from IPython.core.error import UsageError
from IPython.utils import process
from IPython.utils.text import DollarFormatter

from resmagic import scopes
from resmagic.errors import ResmagicError
from resmagic.holders import Holders, held_device
from resmagic.ipython.cells.stack import Layer
from resmagic.ipython.views.output import ReportOutput
from resmagic.ipython.views.text import render_report
from resmagic.report import GpuReport, LogReport, Report

__all__ = [
    "BINDS",
    "BIND_RULE",
    "BUILDERS",
    "IPYTHON_NAMES",
    "LayerFactory",
    "asks_help",
    "bind_problem",
    "split_once",
]

BUILDERS: dict[str, Callable[..., Any]] = {
    "gpu_scope": scopes.gpu_scope,
    "timed": scopes.timed,
    "experiment_log": scopes.experiment_log,
    "db_transaction": scopes.db_transaction,
}
"""Each cell magic's scope, by magic name."""

BINDS = {"experiment_log": "logger", "db_transaction": "cursor"}
"""The user-namespace name each scope's ``as`` value is bound to by default."""

_said: set[str] = set()

IPYTHON_NAMES = frozenset(
    ("In", "Out", "get_ipython", "exit", "quit", "open", "_ih", "_oh", "_dh", "_exit_code")
)
"""Names IPython itself keeps in the user namespace; ``--as`` may not borrow them."""
_IPYTHON_PATTERN = re.compile(r"_+|_i{1,3}|_i?\d+")  # _, __, ___, _i, _ii, _iii, _i7, _7
BIND_RULE = (
    "a Python name, not a keyword, not a __dunder__ name, and not one of IPython's own"
    " (In, Out, get_ipython, exit, quit, open, _, __, ___, _N, _i, _iN, _ih, _oh, _dh)"
)
"""What ``--as NAME`` accepts, in words (the option's help says it)."""


class LastTime(Protocol):
    """What the run store says about a report's cell last time (`` · last time 1.2 s``)."""

    def __call__(self, report: Report, *, peak_from: str | None = None) -> str:
        """The suffix for ``report``'s line; ``peak_from``: another scope's peak instead."""
        ...


# "no GPU row" reasons already shown in this process


class LayerFactory:
    """Builds the layers of one shell's magics.

    Args:
        magics: the ``ResMagics`` object whose magic methods hold the option parsers.
        output: where text reports and the panel's summary go.
    """

    def __init__(self, magics: Any, output: ReportOutput) -> None:
        self.magics = magics
        self.output = output
        self.last_time: LastTime | None = None
        self.last_run: Callable[[str], Any] | None = None
        """The run store's last run of a scope in the running cell (``LastRun`` or None)."""
        """`` · last time 12.3 s`` for a text line, from the run store (set at load)."""

    def _parse(self, magic: str, line: str) -> argparse.Namespace:
        parser = getattr(self.magics, magic).parser
        try:
            argv = split_once(line)
        except ValueError as exc:  # shlex: "No closing quotation"
            msg = f"%%{magic}: cannot read the options {line!r}: {exc}; check the quotes"
            raise UsageError(msg) from None
        try:
            return argparse.Namespace(**dict(_parsed(parser, argv)))
        except UsageError as exc:
            if "unrecognized arguments" in str(exc) and any(not t.startswith("-") for t in argv):
                # `%%timed my long label`: one word was the label, the rest looks like junk.
                msg = f'{exc}; a label or path with spaces needs quotes: %%{magic} "{line}"'
                raise UsageError(msg) from None
            raise

    def layer(self, magic: str, line: str, bind: str | None = None) -> Layer:
        """Parse ``line`` as ``%%magic``'s options and build its layer (UsageError when bad)."""
        options = vars(self._parse(magic, line))
        if bind is not None:
            options.setdefault("var", bind)
        return self.build(magic, **options)

    def build(
        self,
        magic: str,
        *,
        quiet: bool = False,
        panel: bool = True,
        var: str | None = None,
        help: bool = False,
        **options: Any,
    ) -> Layer:
        """The layer of ``%%magic`` from structured options; ``UsageError`` when refused.

        ``options`` are the scope's own keywords; ``quiet``, ``panel`` and ``var`` (the name
        its ``as`` value is bound to) steer the magic. Watch mode and option lines both come
        here, so watch mode never writes options out as text to parse them again.
        """
        if var is not None and (problem := bind_problem(var)):
            msg = f"%%{magic} --as {var!r}: {problem}; e.g. --as {BINDS.get(magic, 'value')}2"
            raise UsageError(msg)
        if magic == "gpu_scope":
            options.setdefault("held_by", self.magics.shell.user_ns)
        try:
            scope = BUILDERS[magic](**options)
        except (ResmagicError, OSError, TypeError) as exc:
            msg = f"%%{magic}: {exc}"
            raise UsageError(msg) from None
        layer = Layer(magic, scope, bind=var if var is not None else BINDS.get(magic))
        if quiet:
            if isinstance(scope, scopes.experiment_log):
                layer.render = self._show_notes
            return layer
        layer.render = self._show_text
        if isinstance(scope, scopes.gpu_scope) and panel:
            self._add_panel(layer, scope)
        return layer

    def _add_panel(self, layer: Layer, scope: scopes.gpu_scope) -> None:
        """Give a ``gpu_scope`` layer the live widget panel, where a kernel can show it."""
        view = self.panel(scope, layer.magic)
        if view is not None:
            layer.start, layer.stop = view.start, view.stop

            def render(report: Report) -> None:
                view.finish(view.summary(report, [*self.last_line(report), *self.held(report)]))

            layer.render = render

    def last_line(self, report: Report) -> list[str]:
        """``  last time 12.3 s, peak 5.1 GiB`` for a cell that ran before (the run store)."""
        suffix = self.last_time(report) if self.last_time is not None else ""
        return [f"  {suffix.removeprefix(' · ')}"] if suffix else []

    def panel(self, scope: scopes.gpu_scope, magic: str, delay: float | None = None) -> Any:
        """A live ``CellPanel`` for ``scope``, or None where no kernel can show one."""
        from resmagic.ipython.views import (
            cell_panel as panel,  # ipywidgets loads with the first panel
        )

        if not panel.available(self.magics.shell):
            return None
        return panel.CellPanel(scope, magic, _said, self.output, delay, self._expected)

    def _expected(self) -> float | None:
        last = self.last_run("gpu_scope") if self.last_run is not None else None
        return getattr(last, "duration_s", None)

    def _show_text(self, report: Report) -> None:
        text = render_report(report, _said)
        if self.last_time is not None:
            first, newline, rest = text.partition("\n")
            text = first + self.last_time(report) + newline + rest
        text = "\n".join([text, *self.held(report)])
        self.output.show({"text/plain": text}, report.cell)

    def _show_notes(self, report: Report) -> None:
        """A quiet layer's report still says what its log lost (reliability 2026-12-06 #5)."""
        if isinstance(report, LogReport) and report.notes:
            text = "\n".join(f"{report.scope}: {note}" for note in report.notes)
            self.output.show({"text/plain": text}, report.cell)

    def held(self, report: Report) -> list[str]:
        """The line naming what holds the memory (``held by: ...``), where the report has it.

        The scope named them when it closed (``report.holders``): after a cell that left a
        lot held, or at an out-of-memory error, before the reclaim cleared its frames.
        """
        if not isinstance(report, GpuReport) or not report.holders_when:
            return []
        holders = Holders(report.holders)
        if report.holders_when == "error":
            freed = ", freed by the reclaim" if report.reclaimed else ""
            text = holders.line(min_bytes=1 << 20).replace("held by:", "held when it ran out:")
            return [f"  {text}{freed}"]
        device = report.holders[0].device if report.holders else held_device(report.devices)
        return [f"  {device or 'host'} {holders.line(min_bytes=1 << 20)}"]

    def say_once(self, text: str) -> str | None:
        """``text`` the first time this process shows it, else None ("no GPU row" notes)."""
        if text in _said:
            return None
        _said.add(text)
        return text

    def expand(self, text: str) -> str:
        """What IPython does to a magic's first line (``{var}``, ``$var``), for our other lines."""
        try:
            return DollarFormatter().vformat(text, args=[], kwargs=self.magics.shell.user_ns)
        except Exception:
            return text


def bind_problem(name: str) -> str | None:
    """Why ``name`` cannot hold a cell's ``as`` value, or None when it can.

    The name is bound for the cell and put back after it; one IPython relies on
    (``get_ipython``, ``Out``, ``_``) would be wrong for the whole cell, and one that is no
    Python name (``1abc``, ``a b``) could not be used in it at all (reliability 2026-12-06
    #9).
    """
    if not name.isidentifier():
        return "not a Python name"
    if keyword.iskeyword(name):
        return "a Python keyword"
    if name in IPYTHON_NAMES or _IPYTHON_PATTERN.fullmatch(name):
        return "a name IPython keeps in the namespace"
    if name.startswith("__") and name.endswith("__"):
        return "a __dunder__ name Python uses"
    return None


def split_once(line: str) -> tuple[str, ...]:
    """``line`` split as a shell would (quotes, escapes); ``ValueError`` for an open quote."""
    # magic_arguments splits with posix=False, which keeps the quotes of a quoted path
    # ('"my runs/a.log"' would become a file name with quote characters in it).
    argv: list[str] = process.arg_split(line, posix=os.name == "posix")  # type: ignore[attr-defined]
    return tuple(argv)


# A notebook runs the same option lines cell after cell (watch mode builds its layers every
# cell): shlex and argparse cost more than the timed scope itself, so each line is split
# and parsed once. A bad line raises each time (exceptions are not cached); the parsed
# values are str, bool and float, never shared mutable objects.
@functools.lru_cache(maxsize=256)
def _parsed(parser: argparse.ArgumentParser, argv: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    return tuple(vars(parser.parse_args(list(argv))).items())


def asks_help(line: str) -> bool:
    """True when an option line asks for help: ``-h``/``--help``, or a trailing ``?``."""
    if line.rstrip().endswith("?"):
        return True
    try:
        return any(token in ("-h", "--help") for token in split_once(line))
    except ValueError:
        return False
