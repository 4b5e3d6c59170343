"""The run store without IPython: scripts, the cap, two processes at once, liveness, died rows."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import resmagic
from resmagic.bus import publish
from resmagic.config import settings
from resmagic.ranktable import rank_device_rows
from resmagic.report import Holder, LogReport, TransactionReport
from resmagic.store import runs
from resmagic.store.died import Death, mark_dead
from resmagic.store.liveness import Identity, alive, me
from resmagic.store.recorder import recorder
from resmagic.store.rows import CellRun, Session, _report_row, insert_running, insert_session
from resmagic.store.schema import connect
from tests.reports import BASE, gpu_report, ranks_report, timing_report

SCRIPT = """
import sys, resmagic
if len(sys.argv) > 1:
    resmagic.settings.update(store=sys.argv[1])
with resmagic.timed("script"):
    pass
with resmagic.gpu_scope("host"):
    block = bytearray(1 << 20)
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    """``settings.store`` pointed at a fresh file for the test, off again afterwards."""
    path = tmp_path / "runs.sqlite"
    before, limit = settings.store, settings.store_limit
    settings.update(store=str(path))
    yield path
    settings.store, settings.store_limit = before, limit
    recorder.writer()  # back to the file before, or closed


def _script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython")}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_plain_script_writes_no_store(tmp_path: Path) -> None:
    done = _script(tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "ipython").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_script_that_asks_gets_every_report_written_by_exit(tmp_path: Path) -> None:
    path = tmp_path / "asked.sqlite"
    done = _script(tmp_path, str(path))
    assert done.returncode == 0, done.stderr
    table = runs(path=str(path))
    assert list(table["scope"]) == ["timed", "gpu_scope"]
    assert list(table["status"]) == ["ok", "ok"]
    assert table["device"].iloc[1] == "host"
    assert table["peak_bytes"].iloc[1] >= table["before_bytes"].iloc[1]
    assert str(table["started_at"].dt.tz) == "UTC"


def test_the_cap_drops_the_oldest_reports(store: Path) -> None:
    settings.update(store_limit="5")
    for i in range(12):
        with resmagic.timed(f"t{i}"):
            pass
    table = runs()
    assert list(table["label"]) == [f"t{i}" for i in range(7, 12)]


def test_store_off_writes_nothing(tmp_path: Path, store: Path) -> None:
    with resmagic.timed("on"):
        pass
    assert recorder.flush()
    settings.update(store="off")
    assert settings.store == ""
    with resmagic.timed("off"):
        pass
    assert list(runs(path=str(store))["label"]) == ["on"]


def test_runs_filters_by_cell_code_and_time(store: Path) -> None:
    before = time.time()
    run = CellRun("nb.ipynb", "cell-a", 3, "abc")
    context = recorder.context
    recorder.context = lambda: run
    try:
        with resmagic.timed("a"):
            pass
    finally:
        recorder.context = context
    with resmagic.timed("b"):
        pass
    assert list(runs(notebook="nb.ipynb")["label"]) == ["a"]
    assert list(runs(cell="cell-a")["label"]) == ["a"]
    number = runs(notebook="nb.ipynb")["cell"].iloc[0]  # In[n] when a shell is loaded, else 3
    assert "a" in list(runs(cell=int(number))["label"])
    assert len(runs(since=before - 1)) == 2
    assert len(runs(since=time.time() + 60)) == 0
    assert len(runs(code="print('never run')")) == 0


WRITER = """
import sys, time, resmagic
resmagic.settings.update(store=sys.argv[1])
go = float(sys.argv[2])
while time.time() < go:
    time.sleep(0.01)
for i in range(int(sys.argv[3])):
    with resmagic.timed(f"{sys.argv[4]}-{i}"):
        pass
"""


def test_two_processes_writing_one_store_lose_no_rows(tmp_path: Path) -> None:
    path, n = tmp_path / "shared.sqlite", 400
    go = str(time.time() + 3)  # both start writing at the same moment
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), go, str(n), name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert not any("locked" in out + err for out, err in outputs)
    table = runs(path=str(path))
    assert sorted(table["label"]) == sorted(f"{w}-{i}" for w in "ab" for i in range(n))
    assert table["session"].nunique() == 2


def test_this_process_is_alive_and_an_exited_one_is_not() -> None:
    assert alive(me()) is True
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone = Identity(me().host, int(done.stdout), me().boot, 1)
    assert alive(gone) is False
    assert alive(Identity("another-host", os.getpid(), None, None)) is None


def test_a_zombie_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 60
    while Path(f"/proc/{child.pid}/stat").read_text().split(")")[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ticks = int(Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    assert alive(Identity(me().host, child.pid, me().boot, ticks)) is False
    child.wait()


def _running_row(path: Path, who: Identity, notebook: str) -> CellRun:
    conn = connect(str(path))
    session = Session(f"s-{who.pid}", who, notebook, "test")
    insert_session(conn, session)
    run = CellRun(notebook, "c1", 14, "sha", scope="gpu_scope", started_at=time.time() - 12)
    run.live = {
        "host RSS": {
            "name": "host",
            "source": "RSS",
            "before_bytes": 1,
            "peak_bytes": 23 << 30,
            "after_bytes": 23 << 30,
            "total_bytes": 24 << 30,
            "limited": True,
        }
    }
    insert_running(conn, run, session.session)
    conn.execute("UPDATE reports SET updated_at = started_at + 12")
    conn.close()
    return run


def test_a_running_row_of_a_dead_process_becomes_died_once(tmp_path: Path) -> None:
    path = tmp_path / "died.sqlite"
    _running_row(path, Identity(me().host, 2**22 + 7, me().boot, 1), "nb.ipynb")  # no such pid
    conn = sqlite3.connect(path)
    deaths = mark_dead(conn, "other.ipynb")
    assert deaths == []  # another notebook's cells are its own kernel's business
    deaths = mark_dead(conn, "nb.ipynb")
    assert [d.message(oom_kills_now=None) for d in deaths] == [
        "resmagic: the previous kernel died during cell 14 (gpu_scope),"
        " 23.0 GiB of a 24.0 GiB limit, 12 s into it"
    ]
    assert mark_dead(conn, "nb.ipynb") == []
    assert conn.execute("SELECT status FROM reports").fetchall() == [("died",)]


def test_a_running_row_of_a_live_process_stays_running(tmp_path: Path) -> None:
    path = tmp_path / "alive.sqlite"
    _running_row(path, me(), "nb.ipynb")
    conn = sqlite3.connect(path)
    assert mark_dead(conn, "nb.ipynb") == []
    assert conn.execute("SELECT status FROM reports").fetchall() == [("running",)]


def test_the_message_names_the_oom_killer_when_its_counter_rose() -> None:
    death = Death(7, "timed", "train", 3.0, (), oom_kills=2)
    assert death.message(oom_kills_now=3).endswith("; the container's OOM killer fired")
    assert "OOM" not in death.message(oom_kills_now=2)
    assert death.message().startswith("resmagic: the previous kernel died during cell 7 (train)")


def test_reading_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "never" / "written.sqlite"
    table = runs(path=str(missing))
    assert len(table) == 0
    assert "peak_bytes" in table.columns
    assert not missing.parent.exists()


def test_holders_are_stored_and_read_back_as_in_history_frame(store: Path) -> None:
    held_mib, settings.held_mib = settings.held_mib, 16
    names: dict[str, object] = {}
    try:
        with resmagic.gpu_scope("host", held_by=names):
            names["block"] = b"x" * (64 << 20)  # pages touched: RSS rises
    finally:
        settings.held_mib = held_mib
    assert resmagic.history()[-1].holders  # type: ignore[attr-defined]
    table = runs()
    assert "block 64.0 MiB" in table["holders"].iloc[-1]
    assert table["holders"].iloc[-1] == resmagic.history_frame()["holders"].iloc[-1]


def test_a_logs_lost_records_and_its_note_are_stored_as_in_history_frame(store: Path) -> None:
    note = "run.log: 480 of 500 records not written: [Errno 28] No space left on device"
    report = LogReport(
        status="ok", duration_s=0.1, started_at=time.time(), path="run.log", records=20
    )
    publish(dataclasses.replace(report, lost=480, notes=(note,)))
    table, frame = runs(), resmagic.history_frame()
    for column, value in (("notes", note), ("lost", 480), ("records", 20)):
        assert table[column].iloc[-1] == value == frame[column].iloc[-1], column


def test_rank_zeros_table_is_stored_as_rank_rows_and_other_ranks_reports_are_not(
    store: Path,
) -> None:
    publish(dataclasses.replace(ranks_report(1), status="error"))  # rank 1: rank 0's has it
    publish(ranks_report(0))
    recorder.flush()
    table = runs()
    assert set(table["status"]) == {"ok"}
    rows = table.set_index("device")
    assert rows.loc["rank 0", "peak_bytes"] == 300 << 20
    assert rows.loc["rank 1", "peak_bytes"] == 500 << 20
    assert "rank 2" not in rows.index  # missing: nothing measured
    frame = resmagic.history_frame()
    assert list(table["device"]) == list(frame["device"])[-3:] == ["host", "rank 0", "rank 1"]
    cell = "ranks 2 of 3; host peak 500 MiB on rank 1; rank 2 missing"
    assert table["ranks"].iloc[-1] == cell == resmagic.history_frame()["ranks"].iloc[-1]


def test_a_forked_child_names_its_runs_apart_from_its_parents() -> None:
    from resmagic.store.rows import new_id

    mine = new_id()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id, and exit without pytest's teardown
        os.write(write, new_id().encode())
        os._exit(0)
    os.close(write)
    theirs = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    after = new_id()
    assert theirs[:12] != mine[:12]  # a prefix of its own: the counters may meet
    assert after[:12] == mine[:12]
    assert after != mine


def _as_to_dict_said(report: resmagic.Report) -> dict[str, Any]:
    """The row's JSON columns as the first store built them: from ``report.to_dict()``."""
    record = report.to_dict()
    devices = record.get("devices")
    if record.get("ranks"):
        devices = [*(devices or ()), *rank_device_rows(record["ranks"])]
    holders = record.pop("holders", None)
    known = {"scope", "status", "duration_s", "started_at", "cell", "error", "devices", "notes"}
    extra = {k: v for k, v in record.items() if k not in known}
    return {
        "label": extra.get("label") or extra.get("path") or None,
        "devices": json.dumps(devices) if devices else None,
        "holders": json.dumps(holders) if holders else None,
        "notes": "; ".join(record.get("notes") or ()) or None,
        "extra": json.dumps(extra) if extra else None,
    }


@pytest.mark.parametrize(
    "report",
    [
        timing_report(),
        timing_report(label=None, status="error"),
        gpu_report(),
        dataclasses.replace(
            gpu_report(),
            holders=(Holder("model.fc.weight", "parameter", "host", 4096, ("tied",)),),
            holders_when="after",
        ),
        ranks_report(),
        LogReport(status="ok", **BASE, path="/tmp/run.log", records=3, notes=("disk full",)),
        TransactionReport(status="ok", **BASE, path="db.sqlite", committed=True, changes=2),
    ],
    ids=["timed", "timed-error", "gpu", "gpu-holders", "ranks", "log", "transaction"],
)
def test_a_row_holds_what_to_dict_says(report: resmagic.Report) -> None:
    # The writer builds a row field by field (issue 26), not from to_dict(): the same columns.
    session = Session("s", me(), "nb.ipynb", "0")
    values = _report_row(report, CellRun("nb", "c", 1, "sha"), session)
    row = dict(zip(_ROW_COLUMNS, values, strict=True))
    assert {k: row[k] for k in ("label", "devices", "holders", "notes", "extra")} == (
        _as_to_dict_said(report)
    )
    assert row["scope"] == report.scope
    assert row["status"] == report.status


_ROW_COLUMNS = [
    *("run", "session", "notebook", "cell_id", "cell", "code_sha", "scope", "label", "status"),
    *("started_at", "duration_s", "updated_at", "devices", "holders", "notes", "extra", "error"),
]


def test_a_scripts_store_problem_is_a_warning_at_its_line_and_never_fails_the_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = settings.store, recorder.say, recorder.context
    recorder.say, recorder.context = None, lambda: None  # a script: no IPython layer

    def unwritable(name: str) -> None:  # a new writer each time: a problem of its own
        blocker = tmp_path / name
        blocker.write_text("not a folder")
        settings.store = str(blocker / "runs.sqlite")
        recorder.writer()
        with resmagic.timed("first"):
            pass
        recorder.flush()  # its write has failed before the next report

    try:
        unwritable("a")
        warned = pytest.warns(RuntimeWarning, match="could not write the run store")
        with warned as said, resmagic.timed("second"):
            pass
        assert said[0].filename == __file__  # the script's own line, not one of ours
        unwritable("b")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # -W error must not fail the block (the bus's rule)
            with pytest.raises(ValueError, match="the block's own"), resmagic.timed("third"):
                raise ValueError("the block's own")
        assert "resmagic: could not write the run store" in capsys.readouterr().err
    finally:
        settings.store, recorder.say, recorder.context = saved
        recorder.writer()
