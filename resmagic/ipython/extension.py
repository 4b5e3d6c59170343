"""Loading registers the magics and hooks; unloading undoes exactly that."""

from __future__ import annotations

from typing import Any

from resmagic import report
from resmagic.ipython.awaiting import AwaitRewriter
from resmagic.ipython.magics import ResMagics
from resmagic.sampler import sampler

__all__ = ["load", "unload"]

_loaded: dict[int, tuple[ResMagics, AwaitRewriter]] = {}


def load(ip: Any) -> None:
    """Register the magics on ``ip`` and tell scopes how to find the current cell number."""
    magics = ResMagics(ip)
    ip.register_magics(magics)
    rewriter = AwaitRewriter(ip, frozenset(ResMagics.builders))
    ip.input_transformers_cleanup.append(rewriter)
    _loaded[id(ip)] = (magics, rewriter)
    # execution_count is bumped before a cell runs, so the running cell is one less.
    report.set_cell_provider(lambda: max(ip.execution_count - 1, 0) or None)


def unload(ip: Any) -> None:
    """Remove our magics (only if still ours), stop the sampler, forget the cell provider."""
    loaded = _loaded.pop(id(ip), None)
    if loaded is None:
        return
    magics, rewriter = loaded
    if rewriter in ip.input_transformers_cleanup:
        ip.input_transformers_cleanup.remove(rewriter)
    manager = ip.magics_manager
    if manager.registry.get(type(magics).__name__) is magics:
        del manager.registry[type(magics).__name__]
    for kind, names in magics.magics.items():
        table = manager.magics[kind]
        for name in names:
            if getattr(table.get(name), "__self__", None) is magics:
                del table[name]
    sampler.shutdown()
    report.set_cell_provider(None)
