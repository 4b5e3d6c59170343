"""The store's file: private, reached through no link, and only ever a resmagic store."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from resmagic.errors import PathError
from resmagic.store.files import APPLICATION_ID, examine
from resmagic.store.schema import connect


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def _foreign(path: Path, user_version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE reports (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO reports (body) VALUES ('precious')")
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()


def test_a_new_store_and_the_folders_made_for_it_are_private_under_umask_022(
    tmp_path: Path, umask_022: None
) -> None:
    folder_before = _mode(tmp_path)
    path = tmp_path / "made" / "here" / "runs.sqlite"
    conn = connect(str(path))
    conn.execute("INSERT INTO sessions VALUES ('s', 'h', 1, NULL, NULL, NULL, 0, 'v')")
    assert (path.parent / "runs.sqlite-wal").exists()
    assert (path.parent / "runs.sqlite-shm").exists()
    for name in ("runs.sqlite", "runs.sqlite-wal", "runs.sqlite-shm"):
        assert _mode(path.parent / name) == 0o600, name
    conn.close()
    assert _mode(tmp_path / "made") == 0o700
    assert _mode(tmp_path / "made" / "here") == 0o700
    assert _mode(tmp_path) == folder_before  # a folder that was there is not ours to change


def test_a_store_made_before_the_application_id_is_adopted_and_made_private(
    tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "old.sqlite"
    conn = connect(str(path))
    conn.execute("PRAGMA application_id = 0")  # as versions before it left their stores
    conn.close()
    path.chmod(0o644)
    assert examine(str(path)) == "old store"
    conn = connect(str(path))
    assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    conn.close()
    assert _mode(path) == 0o600
    assert examine(str(path)) == "store"


def test_a_store_killed_before_its_first_checkpoint_is_still_known_as_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "live.sqlite"
    conn = connect(str(path))
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("INSERT INTO sessions VALUES ('s', 'h', 1, NULL, NULL, NULL, 0, 'v')")
    copy = tmp_path / "copy"
    copy.mkdir()
    for suffix in ("", "-wal"):  # what a SIGKILL leaves: the newest commits only in the log
        shutil.copy(f"{path}{suffix}", copy / f"live.sqlite{suffix}")
    conn.close()
    assert examine(str(copy / "live.sqlite")) == "store"
    assert connect(str(copy / "live.sqlite")).execute("SELECT session FROM sessions").fetchall()


@pytest.mark.parametrize("user_version", [0, 7])
def test_another_programs_database_is_refused_and_left_byte_identical(
    tmp_path: Path, user_version: int
) -> None:
    path = tmp_path / "results.db"
    _foreign(path, user_version)
    before = _snapshot(tmp_path)
    with pytest.raises(PathError, match="not a resmagic run store"):
        connect(str(path))
    assert _snapshot(tmp_path) == before  # same bytes, same mtime, no -wal/-shm beside it


def test_a_file_that_is_not_sqlite_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_bytes(b"not a database\n" * 100)
    before = _snapshot(tmp_path)
    with pytest.raises(PathError, match="not an SQLite database"):
        connect(str(path))
    assert _snapshot(tmp_path) == before


def test_an_empty_file_becomes_a_store(tmp_path: Path) -> None:
    path = tmp_path / "touched.sqlite"
    path.touch()
    connect(str(path)).close()
    assert examine(str(path)) == "store"


@pytest.mark.parametrize("dangling", [True, False])
def test_a_link_at_the_store_path_is_refused_and_not_followed(
    tmp_path: Path, dangling: bool
) -> None:
    target = tmp_path / "someone-elses"
    if not dangling:
        target.write_text("mine")
    link = tmp_path / "runs.sqlite"
    link.symlink_to(target)
    with pytest.raises(PathError, match="symbolic link"):
        connect(str(link))
    assert target.exists() is not dangling
    if not dangling:
        assert target.read_text() == "mine"


@pytest.mark.parametrize("where", ["/dev/null", "folder", "fifo", "under a file"])
def test_a_path_that_cannot_hold_a_store_is_refused(tmp_path: Path, where: str) -> None:
    path = {
        "/dev/null": Path("/dev/null"),
        "folder": tmp_path,
        "fifo": tmp_path / "pipe",
        "under a file": tmp_path / "file" / "runs.sqlite",
    }[where]
    if where == "fifo":
        os.mkfifo(path)
    if where == "under a file":
        path.parent.write_text("a file")
    with pytest.raises(PathError, match="store"):
        connect(str(path))


def test_reading_a_missing_store_makes_no_file(tmp_path: Path) -> None:
    path = tmp_path / "none" / "runs.sqlite"
    conn = connect(str(path), create=False)
    assert conn.execute("SELECT count(*) FROM reports").fetchone() == (0,)
    conn.close()
    assert list(tmp_path.iterdir()) == []
