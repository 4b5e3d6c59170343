"""The run store in an in-process IPython shell: last time, %resmagic runs, config, unload."""

from __future__ import annotations

import gc
import os
import re
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from resmagic.bus import clear_history
from resmagic.config import settings
from resmagic.store import runs
from resmagic.store.recorder import recorder
from tests.children import holding_children


def test_the_text_line_says_how_the_same_cell_did_last_time(
    ip: Any, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("%%timed again\nx = 1", store_history=True)
    first = capsys.readouterr().out
    ip.run_cell("%%timed again\nx = 1", store_history=True)
    second = capsys.readouterr().out
    assert "last time" not in first
    assert second.startswith("timed  again  wall ")
    assert "· last time " in second
    assert second.count("\n") == 1  # on the report's own line


def test_quiet_cells_are_stored_too(ip: Any, store: Path) -> None:
    ip.run_cell("%%timed -q quiet\n%%gpu_scope -q host\nx = 1", store_history=True)
    table = runs()
    assert sorted(table["scope"]) == ["gpu_scope", "timed"]
    assert set(table["label"].dropna()) == {"quiet"}


def test_reports_of_unmeasured_cells_with_one_number_name_their_own_cell(
    ip: Any, store: Path
) -> None:
    # Cells kept out of history share one number: the cell each report names is told by
    # IPython's record of the running cell (the number alone would say the first).
    code = "from resmagic import timed\nfor _ in range(2):\n    with timed({!r}):\n        pass"
    for cell_id in ("first", "second"):
        assert ip.run_cell(code.format(cell_id), store_history=False, cell_id=cell_id).success
    table = runs()
    assert list(table["label"]) == ["first", "first", "second", "second"]
    assert list(table["cell_id"]) == list(table["label"])
    assert table["run"].nunique() == 4


def test_runs_command_has_help_and_refuses_a_bad_count(
    ip: Any, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("resmagic", "runs --help")
    shown = capsys.readouterr().out
    assert "%resmagic runs [count]" in shown
    assert "resmagic.runs() gives them all as a DataFrame" in shown
    with pytest.raises(UsageError, match="positive number"):
        ip.run_line_magic("resmagic", "runs zero")


def test_config_store_on_is_this_profiles_file(
    ip: Any, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("resmagic", "config store=on")
    assert settings.store == os.path.join(ip.profile_dir.location, "resmagic.sqlite")
    ip.run_line_magic("resmagic", "config store=off")
    assert settings.store == ""
    ip.run_line_magic("resmagic", "status")
    assert "  run store: off (limit " in capsys.readouterr().out


def test_unload_writes_what_is_queued_and_reload_reopens(ip: Any, store: Path) -> None:
    ip.run_cell("%%timed -q before-unload\n1", store_history=True)
    ip.run_line_magic("unload_ext", "resmagic")
    try:
        assert settings.store == ""  # put back as before %load_ext: scripts' default
        assert list(runs(path=str(store))["label"]) == ["before-unload"]
    finally:
        ip.run_line_magic("load_ext", "resmagic")
    assert settings.store  # the profile's store again


def test_a_watched_cells_line_says_last_time_with_its_peak(
    ip: Any, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("resmagic", "watch on --no-panel")
    try:
        ip.run_cell("watched = 1", store_history=True)
        first = capsys.readouterr().out
        ip.run_cell("watched = 1", store_history=True)
        second = capsys.readouterr().out
    finally:
        ip.run_line_magic("resmagic", "watch off")
    assert "last time" not in first
    line = second.splitlines()[0]
    assert " · last time " in line
    assert ", peak " in line.split(" · last time ")[1]  # the cell's time, gpu_scope's peak


def test_a_running_cell_can_ask_for_its_last_run(ip: Any, store: Path) -> None:
    ask = (
        "%%timed asking\n"
        "hook = get_ipython().magics_manager.registry['ResMagics'].session.store\n"
        "asked = hook.last_run('timed')"
    )
    ip.run_cell(ask, store_history=True)
    assert ip.user_ns["asked"] is None
    ip.run_cell(ask, store_history=True)
    last = ip.user_ns["asked"]
    assert last is not None
    assert last.status == "ok"
    assert last.duration_s > 0


@pytest.fixture
def unwritable_store(tmp_path: Path) -> Iterator[None]:
    """``settings.store`` under a file, so every write fails; put back afterwards."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    before = settings.store
    # Set as a script may (%resmagic config refuses this path before anything is written).
    settings.store = str(blocker / "runs.sqlite")
    recorder.writer()
    yield
    settings.store = before
    recorder.writer()


@pytest.mark.usefixtures("unwritable_store")
def test_an_unwritable_store_is_said_once_and_the_cells_run(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    results = []
    for i in range(4):
        results.append(ip.run_cell(f"%%timed -q\n{i}", store_history=True))
        recorder.flush()  # each cell's write has failed before the next cell ends
    err = capsys.readouterr().err
    assert all(r.success for r in results)
    assert err.count("could not write the run store") == 1
    assert "(said once)" in err


@pytest.mark.usefixtures("unwritable_store")
def test_an_unwritable_store_is_said_once_by_plain_cells_too(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # No measured cell ends to say it: the report that finds the problem says it, once, as
    # a measured cell's end would (printed: a warnings filter must not hide it).
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as many ML notebooks have it
        for _ in range(4):
            cell = "from resmagic import timed\nwith timed('plain'):\n    pass"
            results.append(ip.run_cell(cell, store_history=True))
            recorder.flush()  # the write has failed before the next cell's report
    err = capsys.readouterr().err
    ip.run_cell("%%timed -q\nx = 1", store_history=True)  # settles the start's checks
    assert all(r.success for r in results)
    assert err.count("could not write the run store") == 1
    assert "(said once)" in err


def test_a_plain_cells_report_keeps_nothing_of_that_cell_alive(ip: Any, store: Path) -> None:
    # The cell a plain cell's reports belong to is kept between reports (issue 26), by
    # what names it only: never by its result, which holds its Out (review of issue 26).
    cell = (
        "import weakref\nclass Big:\n    pass\nbig_ = Big()\nref_ = weakref.ref(big_)\n"
        "from resmagic import timed\nwith timed('keeps'):\n    pass\nbig_"
    )
    assert ip.run_cell(cell, store_history=True).success
    ref = ip.user_ns.pop("ref_")
    del ip.user_ns["big_"]
    ip.run_line_magic("reset", "-f out")  # Out, _, __, ___
    ip.user_ns_hidden.pop("_", None)  # IPython's own hidden copy of the last output
    for _ in range(3):
        ip.run_cell("x = 1", store_history=True)
    gc.collect()
    assert ref() is None


def test_a_loop_that_fills_the_stores_queue_is_told_and_counts_what_it_dropped(
    ip: Any, store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = 25_000  # more than the queue holds after any one batch the writer took first
    monkeypatch.setattr(settings, "store_per_cell", blocks)  # every block's report queued
    assert ip.run_cell("%%timed -q\nx = 1", store_history=True).success
    assert recorder.flush()  # the store and its tables are there
    lock = sqlite3.connect(store, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the writer waits for it: its queue (10,000) fills
    try:
        cell = f"from resmagic import timed\nfor _ in range({blocks}):\n    with timed('s'):\n" + (
            "        pass"
        )
        result = ip.run_cell(cell, store_history=True)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        clear_history()  # 25,000 reports: a full history would hide the next tests' reports
    assert recorder.flush()
    assert result.success
    assert capsys.readouterr().err.count("the run store is behind") == 1
    writer = recorder.writer()
    assert writer is not None
    kept = runs()
    stored = int((kept["label"] == "s").sum())
    assert stored < blocks
    assert stored + writer.lost >= blocks  # every report dropped was counted (trims too)
    capsys.readouterr()
    ip.run_line_magic("resmagic", "status")
    assert f"; {writer.lost} writes lost (its queue was full" in capsys.readouterr().out


def _refused(ip: Any, path: Path | str, match: str) -> None:
    """``%resmagic config store=path`` is a UsageError, and the store stays as it was."""
    before = settings.store
    try:
        with pytest.raises(UsageError, match=match):
            ip.run_line_magic("resmagic", f"config store={path}")
        assert settings.store == before
    finally:
        settings.store = before
        recorder.writer()


@pytest.mark.parametrize("user_version", [0, 7])
def test_config_refuses_another_programs_database_and_leaves_it_byte_identical(
    ip: Any, tmp_path: Path, user_version: int
) -> None:
    path = tmp_path / "results.db"
    conn = sqlite3.connect(path)  # journal_mode delete, as most programs leave theirs
    conn.execute("CREATE TABLE results (loss REAL)")
    conn.execute("INSERT INTO results VALUES (0.1)")
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()
    before = path.read_bytes(), path.stat().st_mtime_ns
    _refused(ip, path, "not a resmagic run store .*%resmagic config store=")
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.db"]  # no -wal, -shm, -kernels


@pytest.mark.parametrize("kind", ["/dev/null", "a folder", "a fifo", "a link", "a dangling link"])
def test_config_refuses_a_store_path_that_is_not_a_plain_file(
    ip: Any, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "target"
    path = {"/dev/null": Path("/dev/null"), "a folder": tmp_path}.get(kind, tmp_path / "runs")
    if kind == "a fifo":
        os.mkfifo(path)
    if kind == "a link":
        target.write_text("mine")
    if "link" in kind:
        path.symlink_to(target)
    _refused(ip, path, "store|link")
    assert not target.exists() if kind == "a dangling link" else True
    if kind == "a link":
        assert target.read_text() == "mine"


def test_runs_refuses_a_count_too_large_for_the_store(ip: Any, store: Path) -> None:
    with pytest.raises(UsageError, match="positive number up to"):
        ip.run_line_magic("resmagic", "runs 99999999999999999999")


def test_last_time_names_the_cells_own_device_never_its_workers(
    ip: Any, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # issue 27 item 2: a DataLoader-like child holding 100 MiB made "last time ... peak
    # 102 MiB" name the workers' memory as the cell's own, with no device said.
    ip.user_ns["holding_children"] = holding_children
    cell = "%%gpu_scope host\nimport time\nwith holding_children(1):\n    time.sleep(0.5)"
    ip.run_cell(cell, store_history=True)
    first = capsys.readouterr().out
    ip.run_cell(cell, store_history=True)
    second = capsys.readouterr().out
    assert "workers 0 B → 0 B (peak 10" in first  # the child was seen: ~100 MiB
    host_peak = re.search(r"host \S+ \S+ → \S+ \S+ \(peak (\S+ \S+), exact\)", first)
    assert host_peak is not None
    said = re.search(r"· last time [^,]+, peak (.+)$", second.rstrip())
    assert said is not None
    assert said[1] == f"{host_peak[1]} host"
