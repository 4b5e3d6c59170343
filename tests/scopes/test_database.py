"""db_transaction: commit on success, roll back on any exception, refuse what is not a database."""

from __future__ import annotations

import gc
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from resmagic import db_transaction
from resmagic.errors import DatabaseLockedError, NotADatabaseError, OptionError, PathError
from resmagic.report import TransactionReport
from resmagic.scopes.database import MAX_TIMEOUT_S

pytestmark = pytest.mark.usefixtures("fresh_history")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "data.db"
    with sqlite3.connect(path) as setup:
        setup.execute("create table t (x)")
    return path


def _rows(path: Path) -> list[tuple[Any, ...]]:
    check = sqlite3.connect(path)  # a new connection: only what was committed
    try:
        return check.execute("select x from t order by x").fetchall()
    finally:
        check.close()


def _report(scope: db_transaction) -> TransactionReport:
    assert scope.report is not None
    return scope.report


def test_commit_on_success(db: Path) -> None:
    scope = db_transaction(db)
    with scope as cursor:
        cursor.executemany("insert into t values (?)", [(1,), (2,), (3,)])
    assert _rows(db) == [(1,), (2,), (3,)]
    report = _report(scope)
    assert (report.status, report.committed, report.changes) == ("ok", True, 3)
    assert report.path == str(db)


def _insert_then_raise(scope: db_transaction, exc: BaseException) -> None:
    with scope as cursor:
        cursor.executemany("insert into t values (?)", [(i,) for i in range(100)])
        raise exc


def test_rollback_on_exception_leaves_zero_new_rows(db: Path) -> None:
    scope = db_transaction(db)
    with pytest.raises(ValueError, match="bad row"):
        _insert_then_raise(scope, ValueError("bad row"))
    assert _rows(db) == []
    report = _report(scope)
    assert (report.status, report.committed, report.changes) == ("error", False, 0)
    assert report.error == "ValueError: bad row"


def test_rollback_on_keyboard_interrupt(db: Path) -> None:
    scope = db_transaction(db)
    with pytest.raises(KeyboardInterrupt):
        _insert_then_raise(scope, KeyboardInterrupt())
    assert _rows(db) == []
    assert _report(scope).status == "interrupted"


def test_rollback_undoes_schema_changes_too(db: Path) -> None:
    def change_schema_then_fail() -> None:
        with db_transaction(db) as cursor:
            cursor.execute("create table u (y)")
            cursor.execute("drop table t")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        change_schema_then_fail()
    names = sqlite3.connect(db).execute("select name from sqlite_master").fetchall()
    assert names == [("t",)]


def test_new_file_is_created(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with db_transaction(path) as cursor:
        cursor.execute("create table t (x)")
        cursor.execute("insert into t values (42)")
    assert _rows(path) == [(42,)]


def test_in_memory_database(tmp_path: Path) -> None:
    with db_transaction(":memory:") as cursor:
        cursor.execute("create table t (x)")
        assert cursor.execute("select count(*) from t").fetchone() == (0,)


def test_home_in_the_path_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with db_transaction("~/home.db") as cursor:
        cursor.execute("create table t (x)")
    assert (tmp_path / "home.db").exists()


def test_not_a_database_file_raises_not_a_database_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello, not a database")
    with pytest.raises(NotADatabaseError, match=r"is not an SQLite database \(its header is"):
        db_transaction(path)
    assert path.read_text() == "hello, not a database"  # untouched


def test_damaged_database_raises_not_a_database_error(tmp_path: Path) -> None:
    path = tmp_path / "damaged.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)  # the header, then garbage
    ran = []
    with pytest.raises(NotADatabaseError, match="is not an SQLite database"), db_transaction(path):
        ran.append("body")
    assert ran == []


def test_empty_file_is_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    with db_transaction(path) as cursor:
        cursor.execute("create table t (x)")
    assert _rows(path) == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp, "is a directory, not a database file"),
        (lambda tmp: tmp / "missing" / "data.db", "folder .* does not exist"),
        # Before: a file named "new" was made, and "new/x.db" then failed.
        (lambda tmp: f"{tmp}/new/", r"'.*/new/' names a folder, not a database file; e\.g\."),
        # Before: "folder ... does not exist", of a folder that exists as a file.
        (lambda tmp: _file(tmp / "notdb.txt") / "x.db", "notdb.txt' is a file, not a directory"),
        (lambda tmp: _file(tmp / "notdb.txt") / "a" / "x.db", "notdb.txt' is a file, not a"),
        (lambda tmp: f"{tmp}/new/.", r"'.*/new/\.' names a folder"),
        (lambda tmp: "  ", "the database path is empty"),
    ],
)
def test_unusable_path_raises_path_error(tmp_path: Path, make: Any, message: str) -> None:
    with pytest.raises(PathError, match=message):
        db_transaction(make(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["notdb.txt"])  # nothing made


def _file(path: Path) -> Path:
    path.write_text("not a database")
    return path


@pytest.mark.parametrize(
    "timeout",
    [-1, "5", True, math.nan, math.inf, -math.inf, 1e300, 10**400, MAX_TIMEOUT_S + 1],
)
def test_bad_timeout_raises_option_error(db: Path, timeout: object) -> None:
    with pytest.raises(OptionError, match="timeout must be a number of seconds from 0 to"):
        db_transaction(db, timeout=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, 0.5, MAX_TIMEOUT_S])
def test_timeout_sqlite_can_wait_is_taken(db: Path, timeout: float) -> None:
    assert db_transaction(db, timeout=timeout).timeout == timeout


def test_largest_timeout_still_waits_for_a_lock(db: Path) -> None:
    # Reliability 2026-12-06 #9: timeout=inf overflowed SQLite's int of milliseconds and it
    # waited not at all. The largest accepted value must still wait: the lock is released
    # by a thread after a moment, and the transaction goes through instead of failing.
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("begin immediate")
    release = threading.Timer(0.3, holder.rollback)
    release.start()
    try:
        with db_transaction(db, timeout=MAX_TIMEOUT_S) as cur:
            cur.execute("insert into t values (1)")
    finally:
        release.join()
        holder.close()
    assert _rows(db) == [(1,)]


@pytest.mark.parametrize("path", [os.devnull, "/dev/full", "/dev/zero"])
def test_device_path_raises_path_error(path: str) -> None:
    with pytest.raises(PathError, match="is a device, not a database file"):
        db_transaction(path)


def test_fifo_path_raises_path_error(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(PathError, match="FIFO"):
        db_transaction(fifo)


def test_symlink_to_a_database_file_is_taken(db: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.db"
    link.symlink_to(db)
    with db_transaction(link) as cur:
        cur.execute("insert into t values (2)")


@pytest.fixture
def locked(db: Path) -> Iterator[Path]:
    """The database with another connection holding its write lock."""
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("begin immediate")
    yield db
    holder.close()


def test_locked_database_raises_database_locked_error_within_the_timeout(locked: Path) -> None:
    outcome: list[BaseException] = []
    ran: list[str] = []

    def enter() -> None:
        try:
            with db_transaction(locked, timeout=0.1):
                ran.append("body")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=enter, daemon=True)
    thread.start()
    thread.join(60)  # a liveness bound, far above the 0.1 s timeout: not a hang
    assert not thread.is_alive(), "db_transaction hung on a locked database"
    assert ran == []
    [error] = outcome
    assert isinstance(error, DatabaseLockedError)
    assert isinstance(error, TimeoutError)
    assert "is locked by another connection (waited 0.1 s)" in str(error)
    assert "timeout=SECONDS" in str(error)


def test_lock_released_in_time_lets_the_transaction_through(db: Path) -> None:
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("begin immediate")
    holder.execute("insert into t values (1)")
    release = threading.Timer(0.1, holder.commit)
    release.start()
    try:
        with db_transaction(db, timeout=60) as cursor:
            cursor.execute("insert into t values (2)")
    finally:
        release.join()
        holder.close()
    assert _rows(db) == [(1,), (2,)]


def test_connection_closed_every_time(db: Path, fd_count: Any) -> None:
    with db_transaction(db):
        pass  # first use
    gc.collect()  # fds of earlier tests' garbage must not close during the loop
    before = fd_count()
    for i in range(200):
        try:
            with db_transaction(db) as cursor:
                cursor.execute("insert into t values (?)", (i,))
                if i % 2:
                    raise LookupError(i)
        except LookupError:
            pass
    assert fd_count() <= before
    assert len(_rows(db)) == 100


def test_a_path_with_a_nul_character_raises_path_error(tmp_path: Path) -> None:
    with pytest.raises(PathError, match="NUL"):
        db_transaction(f"{tmp_path}/a\x00b.db")


_SCRIPT = """
insert into t values (1);  -- a comment; with a semicolon
insert into t values ('a;b');
create trigger keep after insert on t when new.x = 9 begin
    insert into t values (10); insert into t values (11);
end;
insert into t values (9)
"""


def _block(db: Path, body: Callable[[sqlite3.Cursor], None], *, fail: bool) -> db_transaction:
    """A finished ``db_transaction`` block that ran ``body``, then raised when ``fail``."""
    scope = db_transaction(db)
    with scope as cursor:
        body(cursor)
        if fail:
            raise ValueError("after the block")
    return scope


@pytest.mark.parametrize("on", ["cursor", "connection"])
def test_executescript_in_the_block_stays_in_the_transaction(db: Path, on: str) -> None:
    # sqlite3's executescript COMMITs a pending transaction before the script (every Python
    # version), so the block's earlier rows were committed, its script ran in autocommit, a
    # later error rolled back nothing and a good block failed with "cannot commit".
    def body(cursor: sqlite3.Cursor) -> None:
        cursor.execute("insert into t values (0)")
        (cursor if on == "cursor" else cursor.connection).executescript(_SCRIPT)

    with pytest.raises(ValueError, match="after the block"):
        _block(db, body, fail=True)
    assert _rows(db) == []
    assert sqlite3.connect(db).execute("select name from sqlite_master").fetchall() == [("t",)]
    report = _report(_block(db, body, fail=False))
    assert (report.status, report.committed, report.changes) == ("ok", True, 6)
    assert _rows(db) == [(0,), (1,), (9,), (10,), (11,), ("a;b",)]


def _insert_close_then_raise(scope: db_transaction, exc: BaseException | None) -> None:
    with scope as cursor:
        cursor.execute("insert into t values (1)")
        cursor.connection.close()
        if exc is not None:
            raise exc


def test_a_block_that_closes_the_connection_keeps_its_own_error_and_gets_a_report(
    db: Path,
) -> None:
    # Was: sqlite3.ProgrammingError "Cannot operate on a closed database" from the close,
    # in place of the block's own error, and no report.
    scope = db_transaction(db)
    with pytest.raises(ValueError, match="own error"):
        _insert_close_then_raise(scope, ValueError("own error"))
    report = _report(scope)
    assert (report.status, report.committed, report.changes) == ("error", False, 0)
    assert report.error == "ValueError: own error"
    assert _rows(db) == []


def test_a_block_that_closes_the_connection_is_told_its_changes_were_rolled_back(
    db: Path,
) -> None:
    scope = db_transaction(db)
    with pytest.raises(sqlite3.ProgrammingError, match="closed the transaction's connection"):
        _insert_close_then_raise(scope, None)
    report = _report(scope)
    assert (report.status, report.committed, report.changes) == ("error", False, 0)
    assert _rows(db) == []


def _commit_in_the_block(cursor: sqlite3.Cursor, how: str) -> None:
    cursor.execute("insert into t values (1)")
    if how == "commit()":
        cursor.connection.commit()
    elif how == "with connection":
        with cursor.connection:
            cursor.execute("insert into t values (2)")
    else:  # pandas' to_sql: commits the connection itself, rolls it back on an error
        pandas = pytest.importorskip("pandas")
        pandas.DataFrame({"x": [2]}).to_sql("t", cursor.connection, if_exists="append", index=False)
    cursor.execute("insert into t values (3)")


@pytest.mark.parametrize("how", ["commit()", "with connection", "to_sql"])
def test_a_commit_in_the_block_is_the_blocks_own_at_its_end(db: Path, how: str) -> None:
    # Was: the commit ended the transaction, later statements ran in autocommit, a later error
    # rolled back nothing (report "rolled back", every row kept), and a good block failed at its
    # end with "OperationalError: cannot commit - no transaction is active".
    def body(cursor: sqlite3.Cursor) -> None:
        _commit_in_the_block(cursor, how)

    with pytest.raises(ValueError, match="after the block"):
        _block(db, body, fail=True)
    assert _rows(db) == []
    report = _report(_block(db, body, fail=False))
    assert (report.status, report.committed) == ("ok", True)
    assert _rows(db) == ([(1,), (3,)] if how == "commit()" else [(1,), (2,), (3,)])


def test_a_rollback_in_the_block_undoes_its_work_so_far_and_the_rest_is_still_one_transaction(
    db: Path,
) -> None:
    def run(fail: bool) -> None:
        with db_transaction(db) as cursor:
            cursor.execute("insert into t values (1)")
            cursor.connection.rollback()
            cursor.execute("insert into t values (2)")
            if fail:
                raise ValueError("after the rollback")

    with pytest.raises(ValueError, match="after the rollback"):
        run(fail=True)
    assert _rows(db) == []
    run(fail=False)
    assert _rows(db) == [(2,)]


def test_executescript_tests_no_semicolon_inside_a_literal_or_comment(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The split asked sqlite3.complete_statement after every ';' of the text so far: a literal
    # holding n semicolons (a CSV blob) cost O(n^2) (40,000: 1.1 s; stock executescript: 1 ms).
    calls: list[str] = []
    complete = sqlite3.complete_statement

    def counted(statement: str) -> bool:
        calls.append(statement)
        return complete(statement)

    monkeypatch.setattr(sqlite3, "complete_statement", counted)
    blob = "a;" * 1000
    script = f"insert into t values ('{blob}'); /* ; ; */ insert into t values (\"x;y\") -- ;;\n"
    with db_transaction(db) as cursor:
        cursor.executescript(script)
    assert len(calls) <= 2
    assert _rows(db) == [("a;" * 1000,), ("x;y",)]
