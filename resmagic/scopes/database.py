"""``db_transaction``: one SQLite transaction, committed on success, rolled back on any error."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from resmagic.errors import DatabaseLockedError, NotADatabaseError, OptionError, PathError
from resmagic.report import TransactionReport
from resmagic.scopes import MAX_TIMEOUT_S
from resmagic.scopes.base import Scope
from resmagic.scopes.filekind import file_kind, names_a_folder, nearest_existing

__all__ = ["MAX_TIMEOUT_S", "db_transaction", "resolve_db_path"]

_MAGIC = b"SQLite format 3\x00"


def resolve_db_path(path: str | os.PathLike[str]) -> str:
    """Expand ``~``, make ``path`` absolute, and check it can hold an SQLite database.

    A missing file is fine (SQLite creates it); its folder must exist. An existing path
    must be a regular file (a symlink to one is fine): a device (``/dev/null``), a FIFO or
    a socket is refused here, before the block runs, not by ``disk I/O error`` at its end
    (reliability 2026-12-06 #9).

    Raises:
        PathError: a directory (or a path ending with ``/``), a device, FIFO or socket, or
            a folder that is missing or a file.
        NotADatabaseError: an existing, non-empty file that is not SQLite.
    """
    text = os.fspath(path)
    if text == ":memory:":
        return text
    if not text.strip():
        msg = "the database path is empty: give a file name, e.g. data.db (or :memory:)"
        raise PathError(msg)
    full = os.path.abspath(os.path.expanduser(text))
    if os.path.isdir(full) or names_a_folder(text):
        what = "is a directory" if os.path.isdir(full) else "names a folder"
        msg = f"{text!r} {what}, not a database file; e.g. {os.path.join(text, 'data.db')!r}"
        raise PathError(msg)
    folder = os.path.dirname(full)
    if not os.path.isdir(folder):
        existing = nearest_existing(folder)  # a file in the way, or the folders are missing
        missing = f"folder {folder!r} does not exist"
        if not os.path.isdir(existing):
            missing = f"{existing!r} is a file, not a directory"
        msg = f"cannot create {text!r}: {missing}"
        raise PathError(msg)
    kind = file_kind(full)
    if kind is not None and kind != "file":
        msg = f"{text!r} is {kind}, not a database file: give a file name, e.g. data.db"
        raise PathError(msg)
    if kind == "file":
        _check_header(full, text)
    return full


def _check_header(full: str, text: str) -> None:
    """Refuse an existing, non-empty file that does not start as an SQLite database does."""
    try:
        with open(full, "rb") as f:
            head = f.read(len(_MAGIC))
    except OSError as exc:
        msg = f"cannot read {text!r}: {exc.strerror}"
        raise PathError(msg) from exc
    if head and head != _MAGIC:
        msg = f"{text!r} is not an SQLite database (its header is {head[:16]!r})"
        raise NotADatabaseError(msg)


# A string, a quoted name or a comment (each taken whole, in linear time), or a ';' outside
# them: only those ';' can end a statement.
_LEXEME = re.compile(r"""'[^']*'|"[^"]*"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?(?:\*/|\Z)|;""", re.S)


def _statements(script: str) -> Iterator[str]:
    """``script``'s statements one by one, split where SQLite says a statement is complete.

    :func:`sqlite3.complete_statement` is asked only at a ``;`` outside strings, quoted names
    and comments (asking at every ``;`` cost O(n²) for a literal holding n of them); it knows
    a trigger's ``BEGIN ... END``. A last statement needs no ``;``, as in sqlite3's own.
    """
    start = 0
    for lexeme in _LEXEME.finditer(script):
        if lexeme.group() == ";" and sqlite3.complete_statement(script[start : lexeme.end()]):
            yield script[start : lexeme.end()]
            start = lexeme.end()
    if script[start:].strip():
        yield script[start:]


class _Cursor(sqlite3.Cursor):
    """A cursor whose ``executescript`` runs inside the transaction.

    sqlite3's own first COMMITs a pending transaction (every Python version, whatever the
    isolation level), so a block's rows before the script were committed, the script ran in
    autocommit, a later error rolled back nothing, and a good block failed at its end with
    "cannot commit - no transaction is active".
    """

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        if not self.connection.in_transaction:  # the block ended ours: sqlite3's own rules
            return super().executescript(sql_script)
        for statement in _statements(sql_script):
            self.execute(statement)
        return self


class _Connection(sqlite3.Connection):
    """A connection whose cursors, and ``executescript``, are :class:`_Cursor`'s.

    While the block runs (``held``), the transaction is db_transaction's: ``commit()`` and
    ``with connection:`` (pandas' ``to_sql`` does both) leave it open, to be committed when
    the block ends well, and ``rollback()`` undoes the block's work so far and begins the
    transaction again. Otherwise the rows so far were committed, the rest ran in autocommit,
    a later error rolled back nothing, and a good block failed at its end with "cannot
    commit - no transaction is active".
    """

    held = False

    def commit(self) -> None:
        if not self.held:
            super().commit()

    def rollback(self) -> None:
        super().rollback()
        if self.held:
            self.execute("BEGIN IMMEDIATE")

    def __exit__(self, *exc_info: Any) -> Literal[False]:
        if not self.held:
            return super().__exit__(*exc_info)
        if exc_info[1] is not None:
            self.rollback()
        return False

    def cursor(self, factory: Any = _Cursor) -> Any:
        return super().cursor(factory)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        cursor: _Cursor = self.cursor()
        return cursor.executescript(sql_script)


def _closed(connection: sqlite3.Connection) -> bool:
    """Whether ``connection`` was closed (by the block: SQLite rolled its transaction back)."""
    try:
        connection.in_transaction  # noqa: B018 (raises on a closed connection)
    except sqlite3.ProgrammingError:
        return True
    return False


@dataclass(slots=True)
class _Run:
    started_at: float
    t0: float
    connection: _Connection
    changes0: int
    failure: BaseException | None = None


class db_transaction(Scope[sqlite3.Cursor, TransactionReport]):
    """Open an SQLite database, begin a transaction, yield a cursor; commit or roll back.

    The transaction starts with ``BEGIN IMMEDIATE``, so a database that another connection
    is writing to fails here, after ``timeout`` seconds, before the block runs, instead of
    halfway through it. Any exception in the block, ``KeyboardInterrupt`` included, rolls
    back; the connection is always closed.

    Args:
        path: the database file (created if missing) or ``":memory:"``; not a device,
            FIFO or folder.
        timeout: seconds to wait for another connection's lock: a finite number from 0 to
            :data:`MAX_TIMEOUT_S` (about 24.8 days, the longest SQLite can wait).

    Raises:
        PathError, NotADatabaseError: the path cannot hold a database.
        OptionError: ``timeout`` is not a number of seconds SQLite can wait.
        DatabaseLockedError: (on entry) another connection held the lock past ``timeout``.
        TypeError: used as a decorator. The function would get no cursor, and a connection
            it opened itself would wait on the transaction's own lock.

    Examples:
        >>> with db_transaction(":memory:") as cur:
        ...     _ = cur.execute("create table t (x)")
    """

    decorates = False

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        super().__init__()
        self.path = resolve_db_path(path)
        self.display_path = os.fspath(path)
        self.timeout = _timeout_s(timeout)

    def _open(self) -> tuple[_Run, sqlite3.Cursor]:
        # isolation_level=None: we issue BEGIN/COMMIT/ROLLBACK ourselves, nothing implicit.
        connection = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, factory=_Connection
        )
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:  # "file is not a database" is no OperationalError
            connection.close()
            if "locked" in str(exc) or "busy" in str(exc):
                msg = (
                    f"database {self.display_path!r} is locked by another connection"
                    f" (waited {self.timeout:g} s); close that connection, or wait longer"
                    " (timeout=SECONDS; --timeout SECONDS on the magic)"
                )
                raise DatabaseLockedError(msg) from exc
            if "not a database" in str(exc):
                msg = f"{self.display_path!r} is not an SQLite database"
                raise NotADatabaseError(msg) from exc
            raise
        except BaseException:
            connection.close()
            raise
        try:
            connection.held = True
            run = _Run(time.time(), time.perf_counter(), connection, connection.total_changes)
            return run, connection.cursor()
        except BaseException:  # not open yet, so nobody else would undo it (reliability #3)
            connection.close()  # SQLite rolls the transaction back as it closes
            raise

    def _close(self, run: _Run, exc: BaseException | None) -> TransactionReport:
        connection = run.connection
        failure: BaseException | None = None
        changes = 0
        if _closed(connection):  # the block closed it; the block's own error, if any, stands
            if exc is None:
                msg = (
                    "the block closed the transaction's connection: SQLite rolled its changes"
                    " back (leave the connection open; db_transaction commits and closes it)"
                )
                failure = sqlite3.ProgrammingError(msg)
        else:
            connection.held = False
            try:
                if exc is None:
                    connection.execute("COMMIT")
            except BaseException as commit_error:  # e.g. disk full: the block's work is lost
                failure = commit_error
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                changes = connection.total_changes - run.changes0
                connection.close()
        ended = exc or failure
        report = TransactionReport(
            **self.common(run.started_at, time.perf_counter() - run.t0, ended),
            path=self.display_path,
            committed=ended is None,
            changes=changes if ended is None else 0,
        )
        run.failure = failure
        return report

    def _after(self, run: _Run) -> None:
        if run.failure is not None:  # e.g. disk full at COMMIT: the block's work is lost
            raise run.failure


def _timeout_s(timeout: object) -> float:
    """``timeout`` as seconds SQLite can wait; :class:`OptionError` for nan, inf, < 0, huge."""
    seconds = math.nan  # fails both comparisons below, as nan itself does
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        with contextlib.suppress(OverflowError):  # an int past float's range
            seconds = float(timeout)
    if 0 <= seconds <= MAX_TIMEOUT_S:
        return seconds
    msg = (
        f"timeout must be a number of seconds from 0 to {MAX_TIMEOUT_S:.0f} (about 24.8 days,"
        f" the longest SQLite waits), not {timeout!r}"
    )
    raise OptionError(msg)
