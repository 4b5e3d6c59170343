"""The run store in real kernels: restarts, a kernel killed mid-cell, two kernels, store off."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resmagic.store import runs
from tests.cgroups import child_cgroup
from tests.kernel import Kernel

pytestmark = pytest.mark.kernel

NOTEBOOK = "work/train.ipynb"
SLOW = "%%timed train\n%%gpu_scope --no-panel\nimport time\nblock = bytearray(64 << 20)\n"


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    """An IPython folder of the test's own: the store is ``profile_default/resmagic.sqlite``."""
    return tmp_path / "ipython"


def _env(profile: Path, notebook: str = NOTEBOOK) -> dict[str, str]:
    return {**os.environ, "IPYTHONDIR": str(profile), "JPY_SESSION_NAME": notebook}


def _store(profile: Path) -> Path:
    return profile / "profile_default" / "resmagic.sqlite"


@pytest.fixture
def kernel(profile: Path) -> Iterator[Kernel]:
    with Kernel(env=_env(profile)) as k:
        assert k.run("%load_ext resmagic").status == "ok"
        yield k


def _rows(profile: Path, where: str = "1") -> list[dict[str, Any]]:
    conn = sqlite3.connect(_store(profile))
    conn.row_factory = sqlite3.Row
    try:
        # `%load_ext` does not wait for the writer to make the store (issue 26): until its
        # thread has, there are no rows to read.
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'reports'").fetchone():
            return []
        return [dict(r) for r in conn.execute(f"SELECT * FROM reports WHERE {where} ORDER BY id")]
    finally:
        conn.close()


def _wait_for(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "waited a minute for the kernel"
        time.sleep(0.1)


def test_runs_outlive_a_restart_and_the_cell_says_last_time(kernel: Kernel, profile: Path) -> None:
    first = kernel.run("%%timed train\nx = 1", cell_id="cell-1")
    assert first.status == "ok"
    assert "last time" not in first.report_text
    kernel.km.restart_kernel(now=False)
    kernel.kc.wait_for_ready(timeout=60)
    assert kernel.run("%load_ext resmagic").stdout == ""  # nobody died
    again = kernel.run("%%timed train\nx = 2", cell_id="cell-1")
    assert "· last time " in again.report_text
    by_code = kernel.run("%%timed train\nx = 1", cell_id="cell-2")
    assert "· last time " in by_code.report_text  # a new cell id, the same code as cell-1
    fresh = kernel.run("%%timed train\nx = 3", cell_id="cell-3")
    assert "last time" not in fresh.report_text
    kernel.run("%unload_ext resmagic")  # writes what is queued
    table = runs(path=str(_store(profile)))
    assert list(table["cell_id"]) == ["cell-1", "cell-1", "cell-2", "cell-3"]
    assert set(table["notebook"]) == {NOTEBOOK}
    assert table["session"].nunique() == 2
    assert list(table["status"]) == ["ok"] * 4
    assert table["code_sha"].iloc[0] == table["code_sha"].iloc[2]
    assert "x = 1" not in _store(profile).read_bytes().decode("latin-1")  # a hash, never code


def test_reports_of_a_cell_not_measured_carry_that_cell_each_a_run(
    kernel: Kernel, profile: Path
) -> None:
    # The cell's id and code hash are looked up once per cell (issue 26): a loop's reports
    # must still name their own cell, and the next cell's its own.
    loop = "from resmagic import timed\nfor _ in range(3):\n    with timed('step'):\n        pass"
    assert kernel.run(loop, cell_id="loop").status == "ok"
    assert kernel.run(loop, cell_id="again").status == "ok"  # the same code, another cell
    other = "from resmagic import timed\nwith timed('other'):\n    pass"
    assert kernel.run(other, cell_id="other").status == "ok"
    kernel.run("%resmagic runs")  # reads after a flush
    rows = _rows(profile)
    assert [r["cell_id"] for r in rows] == ["loop"] * 3 + ["again"] * 3 + ["other"]
    assert [r["label"] for r in rows] == ["step"] * 6 + ["other"]
    cells = [r["cell"] for r in rows]
    assert cells[0] == cells[2]
    assert cells[3] == cells[5]
    assert len({cells[0], cells[3], cells[6]}) == 3
    shas = [r["code_sha"] for r in rows]
    assert len(set(shas[:6])) == 1
    assert shas[6] not in shas[:6]
    assert None not in shas
    assert len({r["run"] for r in rows}) == 7  # each report a run of its own, as before


def test_a_loop_stores_its_cells_first_reports_and_the_kernel_says_so_once(
    kernel: Kernel, profile: Path
) -> None:
    assert kernel.run("%resmagic config store_per_cell=3").status == "ok"
    loop = "from resmagic import timed\nfor _ in range(5):\n    with timed('step'):\n        pass"
    first = kernel.run(loop, cell_id="loop")
    again = kernel.run(loop, cell_id="again")  # the same code, another cell: its own count
    said = [
        m["content"]["text"] for m in first.of_type("stream") if m["content"]["name"] == "stderr"
    ]
    assert len(said) == 1
    assert said[0].startswith("resmagic: timed 'step' ran more than 3 times in one cell")
    assert "%resmagic config store_per_cell=N" in said[0]
    assert not again.of_type("stream")  # said once
    status = kernel.run("%resmagic status").stdout
    assert "; 4 reports not stored (past their cell's store_per_cell)" in status
    kernel.run("%resmagic runs")
    rows = _rows(profile)
    assert [r["cell_id"] for r in rows] == ["loop"] * 3 + ["again"] * 3


def test_a_running_cell_has_a_live_row(kernel: Kernel, profile: Path) -> None:
    msg_id = kernel.start(SLOW + "time.sleep(3)", cell_id="slow")

    def live() -> list[dict[str, Any]]:
        rows = _rows(profile, "status = 'running' AND devices IS NOT NULL")
        return [r for r in rows if r["duration_s"] and r["duration_s"] > 0]

    row = _wait_for(live)[0]
    assert row["cell_id"] == "slow"
    assert row["scope"] == "timed,gpu_scope"
    assert row["label"] == "train"
    host = next(d for d in json.loads(row["devices"]) if d["name"] == "host")
    assert host["peak_bytes"] >= host["before_bytes"]
    assert kernel.collect(msg_id).status == "ok"
    kernel.run("%resmagic runs")  # reads after a flush
    assert _rows(profile, "status = 'running'") == []
    assert sorted(r["scope"] for r in _rows(profile)) == ["gpu_scope", "timed"]


def test_a_kernel_killed_mid_cell_is_named_by_the_next_one(profile: Path) -> None:
    with Kernel(env=_env(profile)) as first:
        first.run("%load_ext resmagic")
        first.run("%%timed\n1", cell_id="warm")
        first.start(SLOW + "time.sleep(60)", cell_id="doomed")
        _wait_for(lambda: _rows(profile, "status = 'running' AND duration_s > 0"))
        os.kill(first.pid, signal.SIGKILL)
        first.km.shutdown_kernel(now=True)
    with Kernel(env=_env(profile)) as second:
        loaded = second.run("%load_ext resmagic")
        assert loaded.stdout.startswith(
            "resmagic: the previous kernel died during cell 3 (train), "
        )
        assert " of " in loaded.stdout
        assert "s into it" in loaded.stdout
        assert "OOM" not in loaded.stdout  # SIGKILL by hand, not the OOM killer
        died = _rows(profile, "status = 'died'")
        assert [r["cell_id"] for r in died] == ["doomed"]
        assert second.run("%unload_ext resmagic").status == "ok"
        assert second.run("%load_ext resmagic").stdout == ""  # said once


def test_a_second_kernel_on_the_notebook_is_not_taken_for_dead(
    kernel: Kernel, profile: Path
) -> None:
    msg_id = kernel.start(SLOW + "time.sleep(4)", cell_id="long")
    _wait_for(lambda: _rows(profile, "status = 'running'"))
    with Kernel(env=_env(profile)) as other:
        assert other.run("%load_ext resmagic").stdout == ""
        assert [r["status"] for r in _rows(profile, "cell_id = 'long'")] == ["running"]
    assert kernel.collect(msg_id).status == "ok"


def test_two_kernels_writing_at_once_lose_nothing(profile: Path) -> None:
    n = 25
    with Kernel(env=_env(profile, "a.ipynb")) as a, Kernel(env=_env(profile, "b.ipynb")) as b:
        for k in (a, b):
            k.run("%load_ext resmagic")
        cell = "%%timed {}\n%%gpu_scope --no-panel\nx = 1"
        pending = [
            (k, k.start(cell.format(f"{name}{i}")))
            for i in range(n)
            for k, name in ((a, "a"), (b, "b"))
        ]
        outputs = [k.collect(msg_id) for k, msg_id in pending]
        for k in (a, b):
            outputs.append(k.run("%unload_ext resmagic"))
    assert all(run.status == "ok" for run in outputs)
    text = "".join(run.stdout + run.report_text for run in outputs)
    assert "locked" not in text
    assert not any(m["content"]["name"] == "stderr" for r in outputs for m in r.of_type("stream"))
    table = runs(path=str(_store(profile)))
    labels = table[table["scope"] == "timed"]["label"]
    assert sorted(labels) == sorted(f"{w}{i}" for w in "ab" for i in range(n))
    assert (table["scope"] == "gpu_scope").sum() == 2 * n


def test_store_off_in_the_config_writes_nothing(profile: Path) -> None:
    config = profile / "profile_default" / "ipython_kernel_config.py"
    config.parent.mkdir(parents=True)
    config.write_text('c.ResMagic.store = ""\n')
    with Kernel(env=_env(profile)) as k:
        k.run("%load_ext resmagic")
        assert k.run("%%timed\n1").status == "ok"
        assert "run store: off" in k.run("%resmagic status").stdout
        k.run("%unload_ext resmagic")
    assert not _store(profile).exists()


def test_store_off_by_command_stops_writing(kernel: Kernel, profile: Path) -> None:
    kernel.run("%%timed before\n1")
    assert kernel.run("%resmagic config store=off").status == "ok"
    kernel.run("%%timed after\n1")
    assert "the run store is off" in kernel.run("%resmagic runs").stdout
    assert [r["label"] for r in _rows(profile)] == ["before"]
    moved = profile.parent / "moved.sqlite"
    kernel.run(f"%resmagic config store={moved}")
    kernel.run("%%timed moved\n1")
    table = kernel.run("%resmagic runs 5")
    assert "moved" in table.stdout + str(table.result)
    assert list(runs(path=str(moved))["label"]) == ["moved"]


def test_resmagic_runs_prints_the_last_n_with_their_session(kernel: Kernel) -> None:
    for i in range(3):
        kernel.run(f"%%timed t{i}\n{i}")
    shown = kernel.run("%resmagic runs 2")
    assert shown.result is not None
    text = shown.result["text/plain"]
    assert "t0" not in text
    assert "t1" in text
    assert "t2" in text
    assert "(this)" in text
    assert "session" in text.splitlines()[0]


GROW = (
    "%%timed grow\n%%gpu_scope --no-panel\nimport time\nheld = []\n"
    "for _ in range(400):\n    held.append(bytearray(4 << 20))\n    time.sleep(0.02)\n"
)


@pytest.fixture
def small_cgroup() -> Iterator[Path]:
    """A child of this process's memory cgroup (v1) with a 400 MiB limit, removed afterwards."""
    with child_cgroup(400 << 20) as path:
        yield path


def test_a_kernel_the_oom_killer_took_is_named_with_the_limit(
    profile: Path, small_cgroup: Path
) -> None:
    with Kernel(env=_env(profile)) as first:
        (small_cgroup / "cgroup.procs").write_text(str(first.pid))
        first.run("%load_ext resmagic")
        msg_id = first.start(GROW, cell_id="greedy")
        _wait_for(lambda: not first.km.is_alive(), timeout=120)
        with pytest.raises(Exception):
            first.collect(msg_id, timeout=1)
    with Kernel(env=_env(profile)) as second:
        (small_cgroup / "cgroup.procs").write_text(str(second.pid))
        loaded = second.run("%load_ext resmagic").stdout
    assert loaded.startswith("resmagic: the previous kernel died during cell 2 (grow), ")
    assert " of a 400 MiB limit, " in loaded
    assert loaded.rstrip().endswith("; the container's OOM killer fired")


def test_the_panel_shows_progress_against_last_time(kernel: Kernel) -> None:
    from tests.panelhtml import parse_panel

    cell = "%%gpu_scope\nimport time\ntime.sleep(0.8)"
    first = kernel.run(cell, cell_id="eta-cell")
    assert "rm-eta" not in str(first.messages)  # never ran before: no bar
    again = kernel.run(cell, cell_id="eta-cell")
    live = [
        m["content"]["data"]["state"]["value"]
        for m in again.of_type("comm_msg")
        if m["content"]["data"].get("state", {}).get("value")
    ]
    bars = [value for value in live if "rm-eta" in value]
    assert bars, "no live update carried the progress bar"
    expected = float(bars[-1].split("data-expected='")[1].split("'")[0])
    assert 0.8 <= expected < 30  # the first run's duration
    summary = [d for d in again.reports if "rm-panel" in d.get("text/html", "")][-1]
    assert parse_panel(summary["text/html"])["state"] == "ok"
    assert "last time" in summary["text/plain"]


def test_a_kernel_oom_killed_before_its_first_sample_is_named_with_the_oom_killer(
    profile: Path, small_cgroup: Path
) -> None:
    # reliability 2026-12-06 #4: OOM-killed early in a %%gpu_scope cell, the kernel left no
    # trace. One allocation holds the GIL until the OOM killer fires: no writer batch runs.
    with Kernel(env=_env(profile)) as first:
        (small_cgroup / "cgroup.procs").write_text(str(first.pid))
        first.run("%load_ext resmagic")
        first.run("%%timed\n1", cell_id="warm")
        first.start("%%gpu_scope --no-panel\nblock = b'x' * (600 << 20)", cell_id="at-once")
        _wait_for(lambda: not first.km.is_alive(), timeout=120)
    with Kernel(env=_env(profile)) as second:
        (small_cgroup / "cgroup.procs").write_text(str(second.pid))
        loaded = second.run("%load_ext resmagic").stdout
        second.run("%unload_ext resmagic")
    # Usually "before its first sample"; a writer batch that got in before the allocation
    # gives figures instead. Either way the cell is named, and the OOM killer.
    assert loaded.startswith("resmagic: the previous kernel died during cell 3 (gpu_scope), ")
    assert loaded.rstrip().endswith("; the container's OOM killer fired")
    assert [(r["cell_id"], r["status"]) for r in _rows(profile, "status = 'died'")] == [
        ("at-once", "died")
    ]


def test_another_programs_database_at_the_profile_path_is_left_byte_identical(
    profile: Path,
) -> None:
    path = _store(profile)
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE reports (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO reports (body) VALUES ('precious')")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    before = path.read_bytes(), path.stat().st_mtime_ns
    with Kernel(env=_env(profile)) as k:
        loaded = k.run("%load_ext resmagic")
        said = "".join(m["content"]["text"] for m in loaded.of_type("stream"))
        assert k.run("%%timed\n1").status == "ok"
        assert "run store: off" in k.run("%resmagic status").stdout
        again = k.run("%%timed\n2")
    assert said.startswith(f"resmagic: run store off: {path} is an SQLite database that is not")
    assert "%resmagic config store=" in said
    assert not again.of_type("stream")  # said once, at load
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith("resmagic.sqlite-")]
