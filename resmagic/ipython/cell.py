"""Running a cell body inside scopes without changing what the cell means.

The body runs the way ``%%time`` runs it, never through a nested ``run_cell`` (that fires
the cell events twice and swallows errors): transform, parse, exec all but the last
statement, eval the last expression and return it so it becomes ``Out[n]``. The source is
registered with IPython's compiler cache, padded so tracebacks show the user's cell line
numbers, and our frames carry ``__tracebackhide__``. Stacked resmagic magics are peeled by
the caller and entered here in one ``ExitStack``, so the body is compiled once.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from types import CodeType
from typing import Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from resmagic.errors import ResmagicError
from resmagic.report import Report
from resmagic.scopes.base import Scope
from resmagic.scopes.experiment import experiment_log

__all__ = ["Layer", "compile_body", "run_layers"]

_MISSING = object()


@dataclass
class Layer:
    """One magic line of a cell: the scope it built and what to do around it.

    Attributes:
        magic: the magic's name, e.g. ``"gpu_scope"``.
        scope: the scope, built (so its options are checked) but not entered.
        bind: a user-namespace name for the scope's ``as`` value, held for the cell.
        render: called with the scope's report after the cell (None: ``--quiet``).
        start: called before the scope is entered (a live panel shows itself here).
    """

    magic: str
    scope: Scope[Any, Any]
    bind: str | None = None
    render: Callable[[Report], None] | None = None
    start: Callable[[], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Compiled:
    """The body, compiled: statements to exec, and the last expression to eval, if any."""

    body: CodeType
    last: CodeType | None


def compile_body(shell: InteractiveShell, body: str, line_offset: int) -> Compiled:
    """Compile ``body`` as lines ``line_offset + 1 ...`` of the current cell.

    Raises:
        SyntaxError: with the user's line number, before any scope is entered.
    """
    __tracebackhide__ = True
    lines = body.split("\n")
    # transform_cell drops leading blank lines; count them back into the padding.
    blank = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    transformed = shell.transform_cell(body)
    source = "\n" * (line_offset + blank) + transformed
    number = max(shell.execution_count - 1, 0)
    filename = shell.compile.cache(source, number, raw_code=source)
    tree = shell.compile.ast_parse(source, filename=filename)
    tree = shell.transform_ast(tree) or ast.Module(body=[], type_ignores=[])
    # IPython's CachingCompiler compiles ASTs too (typeshed says str) and keeps __future__ flags.
    compiler: Any = shell.compile
    last = None
    final = tree.body[-1] if tree.body else None
    if isinstance(final, ast.Expr):
        tree.body.pop()
        last = compiler(ast.Expression(final.value), filename, "eval")
    return Compiled(compiler(tree, filename, "exec"), last)


def run_layers(
    shell: InteractiveShell, layers: Sequence[Layer], body: str, line_offset: int
) -> Any:
    """Enter every layer's scope (outermost first), run ``body`` once, close them, render.

    Returns the value of the body's last expression (or None), for ``Out[n]``. Exceptions
    from the body propagate unchanged after every scope has closed. A scope that cannot be
    entered (a locked database, an unopenable log) becomes a ``UsageError`` before the body
    runs.
    """
    __tracebackhide__ = True
    code = compile_body(shell, body, line_offset)
    releases: list[Callable[[], None]] = []
    bound: list[tuple[str, object]] = []
    try:
        with ExitStack() as stack:
            for depth, layer in enumerate(layers):
                if layer.start is not None:
                    layer.start()
                value = _enter(stack, layer)
                if depth > 0 and isinstance(layer.scope, experiment_log):
                    # Outer layers close after it: keep the log open to record their reports.
                    releases.append(layer.scope.hold())
                if layer.bind:
                    bound.append((layer.bind, shell.user_ns.get(layer.bind, _MISSING)))
                    shell.user_ns[layer.bind] = value
            exec(code.body, shell.user_global_ns, shell.user_ns)
            if code.last is not None:
                return eval(code.last, shell.user_global_ns, shell.user_ns)
            return None
    finally:
        for release in reversed(releases):
            release()
        for name, old in reversed(bound):
            _restore(shell.user_ns, name, old)
        _render(layers)


def _enter(stack: ExitStack, layer: Layer) -> Any:
    __tracebackhide__ = True
    try:
        return stack.enter_context(layer.scope)
    except (ResmagicError, OSError) as exc:
        msg = f"%%{layer.magic}: {exc}"
        raise UsageError(msg) from None


def _restore(ns: dict[str, Any], name: str, old: object) -> None:
    if old is _MISSING:
        ns.pop(name, None)
    else:
        ns[name] = old


def _render(layers: Sequence[Layer]) -> None:
    for layer in layers:
        report = layer.scope.report
        if layer.render is None or report is None:
            continue
        try:
            layer.render(report)
        except Exception as exc:  # a display problem must never change the cell's outcome
            print(f"resmagic: could not render the {layer.magic} report: {exc!r}", file=sys.stderr)
