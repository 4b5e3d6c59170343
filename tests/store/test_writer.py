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
