"""The store's cap: the oldest finished rows beyond ``settings.store_limit`` dropped.

Counting the finished rows scans an index: 7.7 ms at the default limit of 100,000 rows on
the test machine, and the recorder trims every 50 reports, so a store at its limit cost the
writer thread ~150 µs of CPU per report. :class:`Tally` counts them once, then only the rows
added since (a primary-key range: what this kernel and any other wrote). It counts in full
again when the oldest finished row is not the one it left (another kernel trimmed: its
deletes are not in the range), every :data:`RECOUNT` trims, and before every read.
"""

from __future__ import annotations

import sqlite3

__all__ = ["RECOUNT", "Tally", "finished", "trim"]

RECOUNT = 100
"""Trims (of 50 reports each) between two full counts: what the range count cannot see (a
``running`` row that became ``died``, a batch rolled back after its trim) is put right then."""

_OLDEST = "SELECT min(id) FROM reports WHERE status != 'running'"


def finished(conn: sqlite3.Connection) -> tuple[int, int]:
    """The finished rows (every status but ``running``), and the highest id in the table."""
    (count,) = conn.execute("SELECT count(*) FROM reports WHERE status != 'running'").fetchone()
    (top,) = conn.execute("SELECT max(id) FROM reports").fetchone()
    return int(count), int(top or 0)


def trim(
    conn: sqlite3.Connection, limit: int, keep_session: str | None = None, count: int | None = None
) -> int:
    """Drop the oldest finished rows beyond ``limit``, and sessions left with none; how many.

    ``count``: the finished rows, if known (else counted here).
    """
    if count is None:
        count, _ = finished(conn)
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


class Tally:
    """One writer's count of the store's finished rows, kept between full counts.

    Used on the writer thread only; a count is only trusted on the connection it was made on.
    What the range cannot see only ever makes the count low (the store holds a few rows more
    until the next full count), never high: a kept count never drops a row under the limit.
    """

    def __init__(self) -> None:
        self.count: int | None = None
        self._top = 0  # the highest id the count has seen
        self._oldest: int | None = None  # the oldest finished row after the last trim
        self._conn: sqlite3.Connection | None = None
        self._trims = 0

    def trim(
        self, conn: sqlite3.Connection, limit: int, keep_session: str | None, *, exact: bool = False
    ) -> int:
        """:func:`trim` with the count kept; ``exact``: count in full first (a read follows)."""
        self._trims += 1
        (oldest,) = conn.execute(_OLDEST).fetchone()
        if (
            exact
            or self.count is None
            or conn is not self._conn
            or oldest != self._oldest  # rows went that the count still holds
            or self._trims >= RECOUNT
        ):
            self.count, self._top = finished(conn)
            self._conn, self._trims = conn, 0
        else:
            added, top = conn.execute(
                "SELECT count(*), max(id) FROM reports WHERE id > ? AND status != 'running'",
                (self._top,),
            ).fetchone()
            self.count += int(added)
            self._top = max(self._top, int(top or 0))
        count, self.count = self.count, None  # unknown should the delete fail
        dropped = trim(conn, limit, keep_session, count)
        self.count = count - dropped
        self._oldest = conn.execute(_OLDEST).fetchone()[0] if dropped else oldest
        return dropped
