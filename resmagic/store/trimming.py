"""The store's cap: the oldest finished rows beyond ``settings.store_limit`` dropped."""

from __future__ import annotations

import sqlite3

__all__ = ["trim"]


def trim(conn: sqlite3.Connection, limit: int, keep_session: str | None = None) -> int:
    """Drop the oldest finished rows beyond ``limit``, and sessions left with none; how many."""
    (count,) = conn.execute("SELECT count(*) FROM reports WHERE status != 'running'").fetchone()
    if count <= limit:
        return 0
    conn.execute(
        "DELETE FROM reports WHERE id IN (SELECT id FROM reports WHERE status != 'running'"
        " ORDER BY id LIMIT ?)",
        (count - limit,),
    )
    conn.execute(
        "DELETE FROM sessions WHERE session IS NOT ?"
        " AND session NOT IN (SELECT session FROM reports)",
        (keep_session,),
    )
    return int(count - limit)
