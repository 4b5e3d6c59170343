"""Top-level ``await`` under a resmagic cell magic.

IPython runs a cell magic synchronously, and inside ipykernel the event loop is already
running, so a magic cannot await its body (ipython#14157, open). This input transformer
runs before IPython's own ``%%`` handling: when a cell starts with one of our magics and its
body (under any stacked resmagic lines) only compiles as a coroutine, it rewrites the cell to
``await <our magics>._arun(magic, line, body)``. IPython then runs the cell as an async cell
on its own loop, and the scopes wrap the awaited body exactly as they wrap a plain one. Every
other cell passes through untouched after a check of its first line.
"""

from __future__ import annotations

import re
from typing import Any

from resmagic.ipython.cell import needs_await

__all__ = ["AwaitRewriter"]

_FIRST = re.compile(r"%%(\w+)(.*)")
_STACKED = re.compile(r"\s*%%\w+.*")


class AwaitRewriter:
    """An ``input_transformers_cleanup`` entry: lines in, lines out, no side effects."""

    has_side_effects = False

    def __init__(self, shell: Any, names: frozenset[str]) -> None:
        self.shell = shell
        self.names = names

    def __call__(self, lines: list[str]) -> list[str]:
        """Rewrite a resmagic cell whose body awaits; return every other cell unchanged."""
        if not lines or not lines[0].startswith("%%"):
            return lines
        match = _FIRST.fullmatch(lines[0].rstrip("\n"))
        if match is None or match[1] not in self.names or not self.shell.autoawait:
            return lines
        body = "".join(lines[1:])
        code = "".join(line for line in lines[1:] if not _STACKED.fullmatch(line.rstrip("\n")))
        if ("await" not in code and "async" not in code) or not needs_await(self.shell, code):
            return lines
        call = f"_arun({match[1]!r}, {match[2].strip()!r}, {body!r})"
        return [f"await get_ipython().magics_manager.registry['ResMagics'].{call}\n"]
