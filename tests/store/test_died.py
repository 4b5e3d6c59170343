"""Which cells a dead kernel died in: its state file says, its leftover running rows do not."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from resmagic.report import TimingReport
from resmagic.store.died import mark_dead, settled
from resmagic.store.liveness import Identity, me
from resmagic.store.rows import CellRun, Session, insert_report, insert_running, insert_session
from resmagic.store.schema import connect
from resmagic.store.statefile import Open, State

DEAD = Identity(me().host, 2**22 + 13, me().boot, 1)  # no such pid


def _state(runs: tuple[Open, ...] = (), complete: bool = True, notebook: str = "nb") -> State:
    return State("/nowhere", "dead-session", DEAD, notebook, "test", time.time(), runs, complete)


def _open(run: CellRun) -> Open:
    return Open(run.run, run.cell, run.cell_id, run.code_sha, run.scope, run.label, 1.0, 2)


def _store(tmp_path: Path) -> sqlite3.Connection:
    conn = connect(str(tmp_path / "died.sqlite"))
    insert_session(conn, Session("dead-session", DEAD, "nb", "test"))
    return conn


def _running(conn: sqlite3.Connection, cell: int) -> CellRun:
    run = CellRun("nb", f"c{cell}", cell, None, scope="timed", started_at=time.time() - 5)
    insert_running(conn, run, "dead-session")
    return run


def _statuses(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    return conn.execute("SELECT cell, status FROM reports ORDER BY id").fetchall()


def test_a_running_row_the_page_does_not_name_had_ended(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    _running(conn, 7)  # its delete was still queued when the kernel was killed
    assert mark_dead(conn, "nb", [_state()]) == []
    assert _statuses(conn) == []


def test_the_cell_the_page_names_is_the_one_that_died(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    _running(conn, 7)
    named = _running(conn, 8)
    deaths = mark_dead(conn, "nb", [_state((_open(named),))])
    assert [d.cell for d in deaths] == [8]
    assert deaths[0].message().endswith("s into it")
    assert _statuses(conn) == [(8, "died")]


def test_a_cell_killed_before_its_running_row_gets_a_died_row(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "empty.sqlite"))  # no session row either: died before both
    run = CellRun("nb", "c9", 9, "sha", scope="gpu_scope", label="train")
    [death] = mark_dead(conn, "nb", [_state((_open(run),))])
    assert death.message(oom_kills_now=3) == (
        "resmagic: the previous kernel died during cell 9 (train), before its first sample;"
        " the container's OOM killer fired"
    )
    joined = "SELECT r.status, r.cell_id, s.pid FROM reports r JOIN sessions s USING (session)"
    row = conn.execute(joined).fetchone()
    assert row == ("died", "c9", DEAD.pid)


def test_a_cell_whose_reports_are_in_is_not_a_death(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    run = _running(conn, 5)
    report = TimingReport(status="ok", started_at=1.0, duration_s=0.5)
    insert_report(conn, report, run, Session("dead-session", DEAD, "nb", "test"))
    assert mark_dead(conn, "nb", [_state((_open(run),))]) == []
    assert _statuses(conn) == [(5, "ok")]


def test_without_a_page_the_running_rows_of_a_dead_process_die(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    _running(conn, 3)
    assert [d.cell for d in mark_dead(conn, "nb", [])] == [3]


def test_another_notebooks_open_cells_wait_for_its_own_kernel(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    run = _running(conn, 4)
    other = _state((_open(run),), notebook="other")
    assert mark_dead(conn, "nb", [other]) == []
    assert _statuses(conn) == [(4, "running")]
    assert settled([other], "nb") == []
    idle = _state(notebook="other")
    assert settled([idle], "nb") == [idle]  # nothing left to say of it: removed


def test_a_page_too_full_to_name_every_cell_leaves_its_rows_to_decide(tmp_path: Path) -> None:
    conn = _store(tmp_path)
    unnamed = _running(conn, 1)
    named = _running(conn, 2)
    deaths = mark_dead(conn, "nb", [_state((_open(named),), complete=False)])
    assert {d.cell for d in deaths} == {1, 2}  # the row left out dies, as without a page
    assert _statuses(conn) == [(1, "died"), (2, "died")]
    assert unnamed.run != named.run
