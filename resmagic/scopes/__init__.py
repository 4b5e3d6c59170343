"""The context managers: plain Python, usable in scripts, the library form of the magics.

Each loads with its first use (issue 26: ``%load_ext`` imports no scope a cell has not
asked for); ``from resmagic.scopes import timed`` works as it always did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from resmagic._lazy import later

if TYPE_CHECKING:
    from resmagic.scopes.database import db_transaction
    from resmagic.scopes.experiment import experiment_log
    from resmagic.scopes.gpu import gpu_scope
    from resmagic.scopes.timing import timed

__all__ = [
    "MAX_TIMEOUT_S",
    "RECLAIM",
    "Reclaim",
    "db_transaction",
    "experiment_log",
    "gpu_scope",
    "timed",
]

# The values scope options take, without the scopes: the magics' choices and help at
# %load_ext read these (issue 26: reading them from the scopes' modules imported sqlite3
# and the GPU probes before any cell asked).
Reclaim = Literal["oom", "always", "never"]
RECLAIM: tuple[Reclaim, ...] = get_args(Reclaim)
"""The values ``gpu_scope``'s ``reclaim`` takes (the magic's ``--reclaim`` choices too)."""

MAX_TIMEOUT_S = 2_147_483.0
"""The longest lock wait SQLite takes: its busy timeout is a C ``int`` of milliseconds.

Python's ``sqlite3`` converts a larger value (or ``inf``) past that ``int``, and SQLite then
waits not at all (reliability 2026-12-06 #9: ``timeout=inf`` gave up after 0.03 s)."""

_WHERE = {
    "db_transaction": "resmagic.scopes.database",
    "experiment_log": "resmagic.scopes.experiment",
    "gpu_scope": "resmagic.scopes.gpu",
    "timed": "resmagic.scopes.timing",
}


__getattr__ = later(__name__, _WHERE, globals())
"""Each scope by name, imported when first asked for (PEP 562)."""
