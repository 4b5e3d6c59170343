"""A cell's leading resmagic ``%%`` lines: found, checked, and hidden from IPython.

:class:`HeaderTransformer` is an ``input_transformers_cleanup`` entry, so it sees a cell
before IPython's own cell-magic transform. It turns each leading resmagic line into a comment
of itself (``%%timed`` → ``# %%timed``), so IPython runs the body itself and line numbers
stay the user's. When another cell magic follows (``%%bash``, ``%%capture``) our lines are
removed instead: IPython recognises a cell magic only on line 1. Bad options raise
``UsageError`` here, before anything runs. The layers it built wait in :attr:`pending` for
the cell's ``pre_run_cell`` (see :mod:`resmagic.ipython.cells.runner`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

from resmagic.ipython.cells.options import asks_help
from resmagic.ipython.cells.stack import Layer

__all__ = ["Header", "HeaderTransformer", "header_of", "read_header"]

_LINE = re.compile(r"%%(\w+)(?:[ \t]+(.*?))?[ \t]*")
_SEEN_MAX = 256


class _Line:
    """One ``%%magic options`` line as read: its parts, whether it asks for help or expands."""

    __slots__ = ("expands", "help", "magic", "options", "parsed")

    def __init__(self, magic: str, options: str) -> None:
        self.magic = magic
        self.options = options
        self.help = asks_help(options)
        self.expands = "$" in options or "{" in options or "}" in options
        self.parsed: dict[str, Any] | None = None
        """The options parsed, after the first cell that used them (never for ``expands``)."""


@dataclass(slots=True)  # one per magic cell (issue 26)
class Header:
    """The leading resmagic lines of one cell, and the layers built from them (not entered).

    Attributes:
        lines: the header lines as written, e.g. ``("%%timed train", "%%gpu_scope")``.
        layers: one per line, outermost first.
        source: the cell as the transformer received it (for the fallback in the runner).
        magic_follows: another cell magic comes right after the header.
        last_line: the line the parsed cell ends on (1 when another cell magic follows).
    """

    lines: tuple[str, ...]
    layers: list[Layer]
    source: str
    magic_follows: bool
    last_line: int

    def as_magic_call(self) -> ast.Module:
        """The cell as IPython's own cell-magic transform writes it: our magic runs the body."""
        name, _, options = self.lines[0][2:].partition(" ")
        body = self.source.split("\n", 1)[1] if "\n" in self.source else ""
        return ast.parse(f"get_ipython().run_cell_magic({name!r}, {options.strip()!r}, {body!r})")

    def is_cell_of(self, node: ast.Module) -> bool:
        """True for the parsed AST of this header's own cell, never for another cell's code.

        That cell ends on the cell's last line and starts below the commented header, or
        (another cell magic followed) it is that magic's one-line call.
        """
        if not node.body or getattr(node.body[-1], "end_lineno", None) != self.last_line:
            return False
        if self.magic_follows:
            first = node.body[0]
            call = first.value if isinstance(first, ast.Expr) else None
            func = call.func if isinstance(call, ast.Call) else None
            return isinstance(func, ast.Attribute) and func.attr == "run_cell_magic"
        return min(getattr(stmt, "lineno", 0) for stmt in node.body) > len(self.lines)


def read_header(lines: Sequence[str], ours: Callable[[str], bool]) -> list[tuple[str, str]]:
    """``(magic, options)`` for each leading line that is one of our cell magics."""
    return [(read.magic, read.options) for read in _leading(lines, ours, _read_line)]


def _read_line(line: str) -> _Line | None:
    """``line`` as a magic and its options; None when it is not a ``%%name`` line."""
    match = _LINE.fullmatch(line.rstrip("\r\n"))
    return None if match is None else _Line(match[1], match[2] or "")


def _leading(
    lines: Sequence[str], ours: Callable[[str], bool], read: Callable[[str], _Line | None]
) -> list[_Line]:
    """The leading lines that are our cell magics, each as ``read`` reads it."""
    found: list[_Line] = []
    for line in lines:
        got = read(line)
        if got is None or not ours(got.magic):
            break
        found.append(got)
    return found


def header_of(raw_cell: str, ours: Callable[[str], bool]) -> tuple[str, ...]:
    """The header lines of ``raw_cell`` as :class:`Header` stores them (blank lines skipped)."""
    lines = raw_cell.lstrip("\r\n \t").split("\n")
    return tuple(line.rstrip("\r\n") for line in lines[: len(read_header(lines, ours))])


class HeaderTransformer:
    """Lines in, lines out: our leading lines become comments; the layers wait in ``pending``.

    A cell is left unchanged (so IPython calls the magic method itself) when it asks for
    ``--help`` or ends a line with ``?``: those print help and run nothing.

    Args:
        ours: True for a magic name that is ours in this shell now.
        parse: a ``(magic, options)`` line's options as ``build`` takes them; raises
            ``UsageError``.
        build: builds the layer of one magic from its parsed options; raises ``UsageError``.
        expand: what IPython does to a magic's first line (``{var}``), for our lines.
        on_pending: called when a header starts waiting for its cell (the runner arms its
            hooks).
    """

    has_side_effects = True  # IPython's completeness check must not build scopes

    def __init__(
        self,
        ours: Callable[[str], bool],
        parse: Callable[[str, str], dict[str, Any]],
        build: Callable[..., Layer],
        expand: Callable[[str], str],
        on_pending: Callable[[], None] | None = None,
    ) -> None:
        self.ours = ours
        self.parse = parse
        self.build = build
        self.expand = expand
        self.on_pending = on_pending
        self.pending: Header | None = None
        self._seen: dict[str, _Line | None] = {}
        """Each distinct line read once (issue 26, C2): a notebook runs the same few."""

    def __call__(self, lines: list[str]) -> list[str]:
        """Hide our header from IPython; every other cell passes through untouched."""
        if not lines or not lines[0].startswith("%%"):
            return lines
        source = "".join(lines)
        pending = self.pending
        if pending is not None and pending.source == source:
            # ipykernel transforms a cell twice (once to decide on await): build once.
            return self._hidden(pending, lines[len(pending.lines) :])
        found = _leading(lines, self.ours, self._read)
        if not found or any(read.help for read in found):
            return lines
        n = len(found)
        last = len(lines)  # the line the cell's code ends on (its last one not blank)
        while not lines[last - 1].strip():
            last -= 1
        if last <= n:
            msg = f"%%{found[-1].magic} needs code under it: the cell body is empty"
            raise UsageError(msg)
        rest = lines[n:]
        layers = [self._layer(read) for read in found]
        header = tuple(line.rstrip("\r\n") for line in lines[:n])
        follows = rest[0].startswith("%%")
        # IPython writes a cell magic as one line: get_ipython().run_cell_magic(...)
        self.pending = Header(header, layers, source, follows, 1 if follows else last)
        if self.on_pending is not None:
            self.on_pending()
        return self._hidden(self.pending, rest)

    def _read(self, line: str) -> _Line | None:
        """``line`` as a magic and its options (None: not a ``%%name`` line), read once."""
        if not line.startswith("%%"):
            return None  # the cell's code: never kept
        try:
            return self._seen[line]
        except KeyError:
            pass
        read = _read_line(line)
        if len(self._seen) >= _SEEN_MAX:  # lines typed once each (a notebook of labels)
            self._seen.clear()
        self._seen[line] = read
        return read

    def _layer(self, read: _Line) -> Layer:
        """The line's layer: a fresh scope each cell, options parsed once unless they expand."""
        if read.expands:  # `$var`, `{var}`: the namespace may differ each cell
            return self.build(read.magic, **self.parse(read.magic, self.expand(read.options)))
        parsed = read.parsed
        if parsed is None:  # a bad line raises here every time: nothing is kept
            parsed = read.parsed = self.parse(read.magic, read.options)
        return self.build(read.magic, **parsed)

    def take(self, raw_cell: str) -> Header | None:
        """The pending header if it is ``raw_cell``'s, else None; nothing is pending after."""
        pending, self.pending = self.pending, None
        if pending is None:
            return None
        source = pending.source
        if raw_cell == source or (
            # IPython ends the text it transforms with a newline: the same cell, no re-read
            len(source) == len(raw_cell) + 1 and source[-1] == "\n" and source.startswith(raw_cell)
        ):
            return pending  # the very text it was built from: the same header
        return pending if header_of(raw_cell, self.ours) == pending.lines else None

    @staticmethod
    def _hidden(header: Header, rest: list[str]) -> list[str]:
        if header.magic_follows:
            return rest
        return [f"# {line}\n" for line in header.lines] + rest
