"""The store's cap with a kept count: exact where it must be, no full count per trim."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from resmagic.store.schema import connect
from resmagic.store.trimming import RECOUNT, Tally, finished


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return connect(str(tmp_path / "runs.sqlite"))


def add(conn: sqlite3.Connection, n: int, status: str = "ok", session: str = "s") -> None:
    start = conn.execute("SELECT count(*) FROM reports").fetchone()[0]
    conn.executemany(
        "INSERT INTO reports (run, session, scope, status, started_at) VALUES (?, ?, ?, ?, ?)",
        [(f"r{start + i}", session, "timed", status, float(i)) for i in range(n)],
    )


def finished_ids(conn: sqlite3.Connection) -> list[int]:
    query = "SELECT id FROM reports WHERE status != 'running' ORDER BY id"
    return [row[0] for row in conn.execute(query)]


class Counting:
    """A connection's statements, to see which kind of count a trim made."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.full = 0
        conn.set_trace_callback(self.saw)

    def saw(self, sql: str) -> None:
        if sql.startswith("SELECT count(*) FROM reports WHERE status"):
            self.full += 1


def test_a_store_at_its_limit_keeps_the_newest_rows_without_counting_them_all(
    conn: sqlite3.Connection,
) -> None:
    tally, counts = Tally(), Counting(conn)
    add(conn, 30)
    assert tally.trim(conn, 20, None) == 10
    for _ in range(5):
        add(conn, 7)
        add(conn, 2, status="running")  # a cell still running: not a finished row
        assert tally.trim(conn, 20, None) == 7
    assert counts.full == 1  # the first trim only; then the rows added since, by id
    assert len(finished_ids(conn)) == 20
    assert finished_ids(conn) == sorted(finished_ids(conn))[-20:]
    assert tally.count == 20


def test_rows_another_kernel_wrote_count_too(tmp_path: Path) -> None:
    path = str(tmp_path / "runs.sqlite")
    mine, theirs = connect(path), connect(path)
    tally = Tally()
    add(mine, 10)
    assert tally.trim(mine, 10, None) == 0
    add(theirs, 4, session="other")
    assert tally.trim(mine, 10, None) == 4
    assert finished(mine) == (10, 14)


def test_two_kernels_at_the_limit_never_drop_a_row_under_it(tmp_path: Path) -> None:
    # Each kernel trims what both added; another's deletes are not in the range count.
    path = str(tmp_path / "runs.sqlite")
    kernels = [(connect(path), Tally()), (connect(path), Tally())]
    for i in range(30):
        conn, tally = kernels[i % 2]
        add(conn, 7, session=f"k{i % 2}")
        tally.trim(conn, 20, None)
        assert len(finished_ids(conn)) == min(7 * (i + 1), 20)
    assert finished_ids(conn) == list(range(7 * 30 - 19, 7 * 30 + 1))


def test_what_the_range_count_cannot_see_makes_it_low_until_the_next_full_count(
    conn: sqlite3.Connection,
) -> None:
    tally = Tally()
    add(conn, 10)
    add(conn, 1, status="running")
    tally.trim(conn, 100, None)
    conn.execute("UPDATE reports SET status = 'died' WHERE status = 'running'")
    tally.trim(conn, 100, None)
    assert tally.count == 10  # the died row is older than the range: not seen yet
    for _ in range(RECOUNT - 2):
        tally.trim(conn, 100, None)
    tally.trim(conn, 100, None)  # the RECOUNT-th since the last full count: a full one
    assert tally.count == 11
    assert tally.trim(conn, 100, None, exact=True) == 0  # before a read: counted in full


def test_a_rolled_back_trim_is_counted_again(conn: sqlite3.Connection) -> None:
    tally = Tally()
    add(conn, 12)
    conn.execute("BEGIN")
    assert tally.trim(conn, 10, None) == 2
    conn.execute("ROLLBACK")  # a later job of the same batch failed
    assert tally.trim(conn, 10, None) == 2
    assert len(finished_ids(conn)) == 10


def test_sessions_left_without_rows_go_and_the_kept_one_stays(conn: sqlite3.Connection) -> None:
    for name in ("old", "mine"):
        conn.execute(
            "INSERT INTO sessions (session, host, pid, opened_at) VALUES (?, 'h', 1, 0)", (name,)
        )
    add(conn, 5, session="old")
    tally = Tally()
    assert tally.trim(conn, 3, "mine") == 2
    add(conn, 3, session="mine")
    assert tally.trim(conn, 3, "mine") == 3
    sessions = [row[0] for row in conn.execute("SELECT session FROM sessions")]
    assert sessions == ["mine"]
