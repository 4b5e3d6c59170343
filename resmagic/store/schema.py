"""The run store's file: where it lives, its tables, and a connection that waits for locks.

SQLite in WAL mode with ``synchronous=NORMAL``: a committed row survives the process being
SIGKILLed or OOM-killed (only an OS crash can lose the last commits), readers never wait for
the writer, and two kernels writing one file wait for each other (``busy_timeout``) instead
of failing.
"""

from __future__ import annotations

import os
import sqlite3

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


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, tables created.

    Raises:
        sqlite3.Error: the file cannot be opened or is not a database.
    """
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if conn.execute("PRAGMA user_version").fetchone()[0] < 1:
            # Two kernels may both get here: the second waits, then creates nothing.
            conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "PRAGMA user_version = 1; COMMIT;")
    except BaseException:
        conn.close()
        raise
    return conn
