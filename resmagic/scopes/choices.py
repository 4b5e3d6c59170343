"""The values scope options take, without the scopes: the magics' choices and help at load.

Issue 26: the magics' option parsers are built at ``%load_ext``; reading these limits from
the scopes' own modules imported ``sqlite3`` and the GPU probes before any cell asked.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["MAX_TIMEOUT_S", "RECLAIM", "Reclaim"]

Reclaim = Literal["oom", "always", "never"]
RECLAIM: tuple[Reclaim, ...] = get_args(Reclaim)
"""The values ``gpu_scope``'s ``reclaim`` takes (the magic's ``--reclaim`` choices too)."""

MAX_TIMEOUT_S = 2_147_483.0
"""The longest lock wait SQLite takes: its busy timeout is a C ``int`` of milliseconds.

Python's ``sqlite3`` converts a larger value (or ``inf``) past that ``int``, and SQLite then
waits not at all (reliability 2026-12-06 #9: ``timeout=inf`` gave up after 0.03 s)."""
