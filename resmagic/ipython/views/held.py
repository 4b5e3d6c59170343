"""What the running cell's own variables hold, per device: whether its Δ is theirs.

The panel's Δ is orange only when the variables the cell assigned hold most of what it left
in use (UX audit 2026-12-06 P2-3: a first training cell left +96 MiB that no variable
held, torch's and the interpreter's own growth, and the orange sent users chasing a leak).
A walk of the whole namespace would also count what older variables held before the cell;
the names the cell's code binds (``x = ...``, ``for x in``, ``with ... as x``) are its own.
The cell's code is IPython's input history (``In[-1]``: stored before the cell runs).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

__all__ = ["NOT_VARIABLES", "bound_names", "cell_holds", "held_by_variables"]

NOT_VARIABLES = "not held by your variables (allocator and interpreter caches)"
"""What a Δ that is not orange says on hover, and the ``held by`` line says after it."""


def held_by_variables(grown: int, named: int | None) -> bool:
    """True when the cell's variables hold most (half or more) of what it left in use.

    ``named`` None: nobody could look (no cell code): not orange.
    """
    return named is not None and grown > 0 and named * 2 >= grown


def bound_names(source: str) -> list[str]:
    """The names ``source`` binds at any depth of its module code (not in its functions)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a cell IPython transformed into something else: none known
        return []
    names: dict[str, None] = {}
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue  # their locals are gone; the def's own name holds no memory worth it
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names[node.id] = None
        todo.extend(ast.iter_child_nodes(node))
    return list(names)


def cell_holds(namespace: Mapping[str, Any] | None) -> dict[str, int] | None:
    """Bytes per device the running cell's bound variables hold now; None: no cell code.

    One walk of those variables (20 ms at most); call it only for a cell that left memory.
    """
    if namespace is None:
        return None
    history = namespace.get("In")
    source = history[-1] if isinstance(history, list) and history else None
    if not isinstance(source, str):
        return None
    mine = {name: namespace[name] for name in bound_names(source) if name in namespace}
    if not mine:
        return {}
    from resmagic.holders import who  # the walk loads only when a cell left memory in use

    try:
        return dict(who(mine, top=0).named)
    except Exception:  # naming is a courtesy: a walk that breaks names nothing
        return None
