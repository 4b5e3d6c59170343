"""The run store's file: where it lives, its tables, and a connection that waits for locks.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives the process being
SIGKILLed or OOM-killed (only an OS crash can lose the last commits), readers never wait for
the writer, and two kernels writing one file wait for each other (``busy_timeout``) instead
of failing.
"""

from __future__ import annotations

import sqlite3

from resmagic.store import files

__all__ = ["BUSY_TIMEOUT_S", "connect"]

BUSY_TIMEOUT_S = 10.0
"""How long a connection waits for another's lock before SQLite says "database is locked"."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    boot TEXT,
    pid_start INTEGER,
    notebook TEXT,
    opened_at REAL NOT NULL,
    version TEXT
);
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    session TEXT NOT NULL,
    notebook TEXT,
    cell_id TEXT,
    cell INTEGER,
    code_sha TEXT,
    scope TEXT NOT NULL,
    label TEXT,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_s REAL,
    updated_at REAL,
    devices TEXT,
    holders TEXT,
    notes TEXT,
    extra TEXT,
    error TEXT,
    oom_kills INTEGER
);
CREATE INDEX IF NOT EXISTS reports_cell ON reports (notebook, cell_id, id);
CREATE INDEX IF NOT EXISTS reports_code ON reports (code_sha, id);
CREATE INDEX IF NOT EXISTS reports_status ON reports (status, notebook);
CREATE INDEX IF NOT EXISTS reports_session ON reports (session);
"""


def connect(path: str, *, create: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, tables created.

    The file is looked at before anything is written to it (:mod:`resmagic.store.files`):
    a missing one is made 0600 (``create``; else an empty store in memory is read), an
    empty one or a store is opened, anything else refused unchanged.

    Raises:
        PathError: the path holds something that is not a resmagic store.
        sqlite3.Error, OSError: the file cannot be made, opened or written.
    """
    kind = files.examine(path) if path != ":memory:" else "empty"
    if kind == "missing" and not create:
        path = ":memory:"  # reading never creates a store: a missing file reads as empty
    elif kind == "missing":
        files.create(path)
        kind = files.examine(path)  # ours, or what another kernel made meanwhile
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if kind != "store":
            _adopt(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _adopt(conn: sqlite3.Connection, path: str) -> None:
    """Tables and the application id for an empty file or a store an older version made."""
    # Two kernels may both get here: the second waits, then creates nothing new.
    conn.executescript(
        "BEGIN IMMEDIATE;"
        + _SCHEMA
        + f"PRAGMA application_id = {files.APPLICATION_ID}; PRAGMA user_version = 1; COMMIT;"
    )
    if path != ":memory:":
        files.make_private(path)  # one made before stores were 0600 becomes so, once
