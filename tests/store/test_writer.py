"""The writer thread: a lock held past busy_timeout is waited out, a bad job is dropped alone."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from resmagic.store import schema
from resmagic.store.writer import Writer


def _insert(conn: sqlite3.Connection, value: str) -> None:
    conn.execute("INSERT INTO t VALUES (?)", (value,))


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "w.sqlite"
    conn = schema.connect(str(path))
    conn.execute("CREATE TABLE t (v TEXT)")
    conn.close()
    return path


def test_a_lock_held_past_the_busy_timeout_loses_no_job(
    table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_S", 0.05)  # SQLite gives up on the lock at once
    holder = sqlite3.connect(table, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    writer = Writer(str(table))
    for i in range(20):
        writer.submit(_insert, f"v{i}")
    release = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    release.start()
    assert writer.flush(timeout=60)
    release.join()
    writer.close()
    got = [v for (v,) in holder.execute("SELECT v FROM t ORDER BY rowid")]
    holder.close()
    assert got == [f"v{i}" for i in range(20)]
    assert writer.lost == 0
    assert writer.problem is None


def test_a_failing_job_is_dropped_alone_and_said_once(table: Path) -> None:
    writer = Writer(str(table))
    writer.submit(_insert, "before")
    bad = writer.submit(lambda conn: conn.execute("INSERT INTO nowhere VALUES (1)"), result=True)
    writer.submit(_insert, "after")
    assert writer.flush()
    writer.close()
    assert bad is not None
    assert isinstance(bad.error, sqlite3.OperationalError)
    assert writer.lost == 1
    assert writer.problem is not None
    assert "no such table: nowhere" in writer.problem
    conn = sqlite3.connect(table)
    assert [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")] == ["before", "after"]
    conn.close()


def test_close_commits_what_is_queued_and_stops_the_thread(table: Path) -> None:
    writer = Writer(str(table))
    for i in range(100):
        writer.submit(_insert, str(i))
    writer.close()
    assert not writer.alive
    conn = sqlite3.connect(table)
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)
    conn.close()


def _insert_many(conn: sqlite3.Connection, queued: list[tuple[str]]) -> None:
    conn.executemany("INSERT INTO t VALUES (?)", [(f"{v} (together)",) for (v,) in queued])


def _held(writer: Writer) -> threading.Event:
    """Hold the writer's thread in a job of its own: what is queued next is one batch."""
    running, go = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        running.set()
        go.wait(30)

    writer.submit(hold)
    assert running.wait(30)
    return go


def test_a_run_of_one_job_goes_in_one_call_in_queue_order(table: Path) -> None:
    # Issue 26 C1: a batch's reports in one executemany; other jobs keep their place.
    writer = Writer(str(table), many={_insert: _insert_many})
    go = _held(writer)
    writer.submit(lambda conn: conn.execute("INSERT INTO t VALUES ('first')"))
    for v in ("a", "b"):
        writer.submit(_insert, v)
    asked = writer.submit(_insert, "alone: a result asked", result=True)
    writer.submit(_insert, "c")
    go.set()
    assert writer.flush()
    writer.close()
    assert asked is not None
    assert asked.done
    assert asked.error is None
    conn = sqlite3.connect(table)
    got = [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")]
    conn.close()
    assert got == ["first", "a (together)", "b (together)", "alone: a result asked", "c"]


def test_a_failing_row_in_a_run_is_dropped_alone(table: Path) -> None:
    writer = Writer(str(table), many={_insert: _insert_many})
    with sqlite3.connect(table) as conn:
        conn.execute("CREATE UNIQUE INDEX t_v ON t (v)")
    conn.close()
    go = _held(writer)
    for v in ("a", "b", "a", "c"):  # the second "a" breaks the executemany
        writer.submit(_insert, v)
    go.set()
    assert writer.flush()
    writer.close()
    conn = sqlite3.connect(table)
    got = [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")]
    conn.close()
    assert got == ["a", "b", "c"]  # retried one by one: the duplicate alone is lost
    assert writer.lost == 1
    assert writer.problem is not None
    assert "UNIQUE" in writer.problem
