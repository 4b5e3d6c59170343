"""Layers: a resmagic magic's options, parsed once, and the scope and views built from them.

One factory for the option lines of magic cells and for watch mode's structured options;
how the reports are then shown is :class:`~resmagic.ipython.views.notes.Notes`' job.
"""

from __future__ import annotations

import argparse
import functools
import keyword
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from IPython.core.error import UsageError
from IPython.utils import process
from IPython.utils.text import DollarFormatter

from resmagic import scopes
from resmagic.errors import ResmagicError
from resmagic.ipython.cells.stack import Layer
from resmagic.ipython.views.notes import Notes

if TYPE_CHECKING:
    from resmagic.report import Report

__all__ = [
    "BINDS",
    "BIND_RULE",
    "BUILDERS",
    "IPYTHON_NAMES",
    "LayerFactory",
    "SCOPES",
    "asks_help",
    "bind_problem",
    "split_once",
]


class _Builders(Mapping[str, Callable[..., Any]]):
    """Each cell magic's scope by magic name, its module imported with the first cell using it.

    Issue 26: ``%load_ext`` imported every scope (``sqlite3``, ``secrets``, the GPU probes)
    to fill this table; the names are all the magics and the header need until then.
    """

    _names = ("gpu_scope", "timed", "experiment_log", "db_transaction")

    def __getitem__(self, name: str) -> Callable[..., Any]:
        if name not in self._names:
            raise KeyError(name)
        return cast("Callable[..., Any]", getattr(scopes, name))

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


BUILDERS: Mapping[str, Callable[..., Any]] = _Builders()
"""Each cell magic's scope, by magic name."""

SCOPES = ("gpu_scope", "timed")
"""Watch mode's scopes unless told otherwise (``c.ResMagic.watch_scopes``)."""

BINDS = {"experiment_log": "logger", "db_transaction": "cursor"}
"""The user-namespace name each scope's ``as`` value is bound to by default."""

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


class LayerFactory:
    """Builds the layers of one shell's magics: option line or options in, scope and views out.

    Args:
        parsers: each magic's option parser, by magic name (built when first looked up).
        notes: how the layers' reports are shown (text, the live panel, the lines beside).
        shell: the IPython shell, whose namespace ``held_by`` names holders from.
    """

    def __init__(
        self, parsers: Mapping[str, argparse.ArgumentParser], notes: Notes, shell: Any
    ) -> None:
        self.parsers = parsers
        self.notes = notes
        self.shell = shell

    def _parse(self, magic: str, line: str) -> argparse.Namespace:
        parser = self.parsers[magic]
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

    def options(self, magic: str, line: str) -> dict[str, Any]:
        """``line`` parsed as ``%%magic``'s options, as :meth:`build` takes them (UsageError)."""
        return vars(self._parse(magic, line))

    def layer(self, magic: str, line: str, bind: str | None = None) -> Layer:
        """Parse ``line`` as ``%%magic``'s options and build its layer (UsageError when bad)."""
        options = self.options(magic, line)
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
            options.setdefault("held_by", self.shell.user_ns)
        if magic == "db_transaction" and (
            problem := _names_a_variable(options.get("path"), self.shell.user_ns)
        ):
            msg = f"%%{magic}: {problem}"
            raise UsageError(msg)
        try:
            scope = BUILDERS[magic](**options)
        except (ResmagicError, OSError, TypeError) as exc:
            msg = f"%%{magic}: {exc}"
            raise UsageError(msg) from None
        layer = Layer(magic, scope, bind=var if var is not None else BINDS.get(magic))
        if quiet:
            if isinstance(scope, scopes.experiment_log):
                layer.render = self.notes.show_lost
            return layer
        layer.render = self.notes.show_text
        if isinstance(scope, scopes.gpu_scope) and panel:
            self._add_panel(layer, scope)
        return layer

    def _add_panel(self, layer: Layer, scope: scopes.gpu_scope) -> None:
        """Give a ``gpu_scope`` layer the live widget panel, where a kernel can show it."""
        notes = self.notes
        view = notes.panel(scope, layer.magic)
        if view is not None:
            layer.start, layer.stop = view.start, view.stop

            def render(report: Report) -> None:
                lines = [*notes.last_line(report), *notes.holder_lines(report)]
                view.finish(view.summary(report, lines))

            layer.render = render

    def expand(self, text: str) -> str:
        """What IPython does to a magic's first line (``{var}``, ``$var``), for our other lines."""
        if "$" not in text and "{" not in text and "}" not in text:
            return text  # nothing to expand: no formatter per cell (issue 26)
        try:
            return DollarFormatter().vformat(text, args=[], kwargs=self.shell.user_ns)
        except Exception:
            return text


def _names_a_variable(path: object, namespace: Mapping[str, Any]) -> str | None:
    """Why a database ``path`` is refused: it names a variable, and no file; else None.

    ``%%db_transaction conn``, meant as the connection ``conn``, made an empty database file
    named ``conn`` in the working directory and ran the body against it.
    """
    if not isinstance(path, str) or not path.isidentifier() or path not in namespace:
        return None
    if os.path.lexists(path):
        return None  # a file of that name: the path means it
    kind = type(namespace[path]).__name__
    return (
        f"{path!r} is a variable ({kind}) and no file: the magic takes a database file's path"
        f" (a connection cannot be given). {{{path}}} uses the variable's text as the path;"
        f" ./{path} makes a file of that name"
    )


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


# Split once per distinct line (asks_help and the parse both split it, every cell: a shlex
# split is ~5 us); an open quote raises each time (exceptions are not cached).
@functools.lru_cache(maxsize=256)
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
