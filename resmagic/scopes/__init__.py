"""The context managers: plain Python, usable in scripts, the library form of the magics.

Each loads with its first use (issue 26: ``%load_ext`` imports no scope a cell has not
asked for); ``from resmagic.scopes import timed`` works as it always did.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from resmagic.scopes.database import db_transaction
    from resmagic.scopes.experiment import experiment_log
    from resmagic.scopes.gpu import gpu_scope
    from resmagic.scopes.timing import timed

__all__ = ["db_transaction", "experiment_log", "gpu_scope", "timed"]

_WHERE = {
    "db_transaction": "resmagic.scopes.database",
    "experiment_log": "resmagic.scopes.experiment",
    "gpu_scope": "resmagic.scopes.gpu",
    "timed": "resmagic.scopes.timing",
}


def __getattr__(name: str) -> Any:
    """Each scope by name, imported when first asked for (PEP 562)."""
    where = _WHERE.get(name)
    if where is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value
    return value
