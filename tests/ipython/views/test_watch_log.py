"""watch --log's file: a refused record said once, the rest counted, recovery said."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from resmagic.ipython.views.watch_log import WatchLog
from tests.fulldisk import fill, small_tmpfs

NO_SPACE = "[Errno 28] No space left on device"


def test_records_are_whole_json_lines(tmp_path: Path) -> None:
    log = WatchLog(str(tmp_path / "w.jsonl"))
    assert [log.append({"cell": i}) for i in range(3)] == [None, None, None]
    lines = (tmp_path / "w.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"cell": 0}, {"cell": 1}, {"cell": 2}]
    assert (log.written, log.lost) == (3, 0)
    assert log.describe() == f"log {tmp_path / 'w.jsonl'}"


def test_a_refusing_file_is_said_once_and_counted() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    log = WatchLog("/dev/full")
    notes = [log.append({"cell": i}) for i in range(5)]
    assert notes[0] == (
        f"watch --log: a record could not be written to /dev/full: {NO_SPACE};"
        " the next ones are counted, not said (%resmagic status)"
    )
    assert notes[1:] == [None] * 4
    assert log.lost == 5
    assert log.describe() == f"log /dev/full, 5 records not written: {NO_SPACE}"


def test_writing_resumes_when_space_comes_back_and_says_how_many_were_lost(
    tmp_path: Path,
) -> None:
    with small_tmpfs(tmp_path / "disk") as disk:
        log = WatchLog(str(disk / "w.jsonl"))
        filler = fill(disk)
        notes = [log.append({"cell": i}) for i in range(3)]
        filler.unlink()
        back = log.append({"cell": 3})
        lines = (disk / "w.jsonl").read_text().splitlines()
    assert notes[0] is not None
    assert notes[1:] == [None, None]
    assert back == f"watch --log: writing again; 3 records not written: {NO_SPACE}"
    assert [json.loads(line) for line in lines] == [{"cell": 3}]


def test_a_record_that_is_not_json_is_counted_not_raised(tmp_path: Path) -> None:
    log = WatchLog(str(tmp_path / "w.jsonl"))
    note = log.append({"cell": object()})
    assert note is not None
    assert "Object of type object is not JSON serializable" in note
    assert log.lost == 1
