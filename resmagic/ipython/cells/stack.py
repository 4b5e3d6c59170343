"""The layers of a cell, entered as one stack; and the body runner for a magic called directly.

Cells run by IPython (top-level and nested ``run_cell``) get their scopes from
:mod:`resmagic.ipython.cells.runner`, which enters :func:`inside` around IPython's own execution.
Where our magic method itself gets the body (``get_ipython().run_cell_magic(...)`` from code,
our magic under ``%%time``) :func:`run_layers` runs it the way ``%%time`` does: transform,
parse, exec all but the last statement, eval the last expression and return it. The source is
registered with IPython's compiler cache, padded so tracebacks show the cell's line numbers,
and our frames carry ``__tracebackhide__``.
"""

from __future__ import annotations

import ast
import functools
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from resmagic.errors import ResmagicError
from resmagic.ipython.which_cell import running_cell
from resmagic.scopes.interrupts import around

if TYPE_CHECKING:
    from resmagic.report import Report
    from resmagic.scopes.base import Scope

__all__ = [
    "Inside",
    "Layer",
    "compile_body",
    "inside",
    "run_layers",
]

_MISSING = object()


@dataclass
class Layer:
    """One magic line of a cell: the scope it built and what to do around it.

    Attributes:
        magic: the magic's name, e.g. ``"gpu_scope"``.
        scope: the scope, built (so its options are checked) but not entered.
        bind: a user-namespace name for the scope's ``as`` value, held for the cell.
        render: called with the scope's report after the cell (None: ``--quiet``).
        start: called right after the scope is entered (a live panel shows itself here).
        stop: called when the cell ends, however it ends, if ``start`` was called.
    """

    magic: str
    scope: Scope[Any, Any]
    bind: str | None = None
    render: Callable[[Report], None] | None = None
    start: Callable[[], None] | None = None
    stop: Callable[[], None] | None = None


class Compiled:
    """The body, compiled: statements to exec, and the last expression to eval, if any."""

    __slots__ = ("body", "last")

    def __init__(self, body: CodeType, last: CodeType | None) -> None:
        self.body = body
        self.last = last

    def run(self, shell: InteractiveShell) -> Any:
        """Exec the statements, then return the last expression's value (or None)."""
        __tracebackhide__ = True
        exec(self.body, shell.user_global_ns, shell.user_ns)
        if self.last is None:
            return None
        return eval(self.last, shell.user_global_ns, shell.user_ns)


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
    number = running_cell(shell) or 0
    filename = shell.compile.cache(source, number, raw_code=_name_source(source))
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


def _name_source(source: str) -> str:
    """What the compiler names ``source`` by: itself if short, else its SHA-1.

    ipykernel names a cached source by a pure-Python murmur2 of ``raw_code``: about 2 µs a
    line (360 µs for a 200-line body, which IPython has already hashed once as part of the
    cell). A digest names a long body as uniquely at C speed. A body always starts with the
    padding newline, so it can never be mistaken for a digest. The frontend's debugger
    never sees a magic's body under either name: it hashes the whole cell.
    """
    if len(source) <= 40:
        return source
    import hashlib  # with the first long cell, not at %load_ext (issue 26)

    return hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest()


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
    # Ctrl-C held back while the layers open and close (reliability 2026-12-06 #3).
    with around(inside(shell, layers)):
        return code.run(shell)


def inside(shell: InteractiveShell, layers: Sequence[Layer]) -> Inside:
    """Enter the layers' scopes and bind their values, as one stack; on exit close, render.

    See :class:`Inside`.
    """
    return Inside(shell, layers)


class Inside:
    """Enter the layers' scopes and bind their values, as one stack; on exit close, render.

    An ``experiment_log`` layer is entered first, whatever line it is on: it then closes
    last and records every other layer's report. Reports render in the order written. The
    runner enters and exits this by hand around a cell (``pre_run_cell``/``post_run_cell``).

    A class over one :class:`~contextlib.ExitStack`, not a generator context manager with
    another per bound name: 1.3-1.9 µs less per cell, the same steps in order (issue 26, C5).
    """

    __slots__ = ("_layers", "_ns", "_stack")

    def __init__(self, shell: InteractiveShell, layers: Sequence[Layer]) -> None:
        self._ns = shell.user_ns
        self._layers = layers
        self._stack = ExitStack()

    def __enter__(self) -> None:
        __tracebackhide__ = True
        stack, layers = self._stack, self._layers
        try:
            stack.callback(_render, layers)  # runs last: every scope has closed and reported
            if len(layers) > 1:
                layers = sorted(layers, key=_experiment_log_last)
            for layer in layers:
                value = _enter(stack, layer)
                if layer.start is not None:
                    if layer.stop is not None:
                        stack.callback(_safely, layer.stop, layer.magic, "stop the panel of")
                    _safely(layer.start, layer.magic, "show the panel of")
                if layer.bind:
                    _bind(stack, self._ns, layer.bind, value)
        except BaseException:
            if not stack.__exit__(*sys.exc_info()):
                raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        return bool(self._stack.__exit__(exc_type, exc, tb))


def _experiment_log_last(layer: Layer) -> bool:
    # Built only by LayerFactory: a layer's magic names its scope's class.
    return layer.magic != "experiment_log"


def _enter(stack: ExitStack, layer: Layer) -> Any:
    __tracebackhide__ = True
    try:
        return stack.enter_context(layer.scope.running())
    except (ResmagicError, OSError) as exc:
        msg = f"%%{layer.magic}: {exc}"
        raise UsageError(msg) from None


def _bind(stack: ExitStack, ns: dict[str, Any], name: str, value: object) -> None:
    """``ns[name] = value`` for the block; the old value (or no name) afterwards."""
    old = ns.get(name, _MISSING)
    ns[name] = value
    stack.callback(_unbind, ns, name, old)


def _unbind(ns: dict[str, Any], name: str, old: object) -> None:
    if old is _MISSING:
        ns.pop(name, None)
    else:
        ns[name] = old


def _render(layers: Sequence[Layer]) -> None:
    for layer in layers:
        report, render = layer.scope.report, layer.render
        if render is not None and report is not None:
            _safely(functools.partial(render, report), layer.magic, "render the report of")


def _safely(step: Callable[[], None], magic: str, what: str) -> None:
    try:
        step()
    except Exception as exc:  # a display problem must never change the cell's outcome
        print(f"resmagic: could not {what} {magic}: {exc!r}", file=sys.stderr)
