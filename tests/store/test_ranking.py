"""``resmagic.top()`` and ``%resmagic top``'s query: a real store file, rows as kernels write."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import resmagic
from resmagic.store.ranking import TopQuery, cell_runs, plain_rows, top_of
from resmagic.store.schema import connect

MiB = 1 << 20
NB = "work/train.ipynb"


def _device(name: str, before: int, peak: int, after: int, source: str = "exact") -> dict[str, Any]:
    return {
        "name": name,
        "source": source,
        "before_bytes": before * MiB,
        "peak_bytes": peak * MiB,
        "after_bytes": after * MiB,
        "total_bytes": 1 << 40,
    }


class Rows:
    """Writes report rows into a real store file, as the recorder's writer does."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.conn = connect(self.path)
        self.n = 0

    def add(
        self,
        cell_id: str | None,
        cell: int,
        devices: list[dict[str, Any]],
        *,
        session: str = "s1",
        notebook: str | None = NB,
        status: str = "ok",
        scope: str = "gpu_scope",
        run: str | None = None,
        extra: dict[str, Any] | None = None,
        duration: float = 1.0,
    ) -> None:
        self.n += 1
        self.conn.execute(
            "INSERT INTO reports (run, session, notebook, cell_id, cell, scope, status,"
            " started_at, duration_s, devices, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                run or f"run{self.n}",
                session,
                notebook,
                cell_id,
                cell,
                scope,
                status,
                1000.0 + self.n,
                duration,
                json.dumps(devices) if devices else None,
                json.dumps(extra) if extra else None,
            ),
        )


@pytest.fixture
def rows(tmp_path: Path) -> Rows:
    return Rows(tmp_path / "top.sqlite")


def _top(rows: Rows, **query: Any) -> list[dict[str, Any]]:
    q = TopQuery(**{"notebook": NB, **query})
    return plain_rows(top_of(rows.conn, q), q.by)


def test_a_cell_run_twice_ranks_by_its_last_run_and_says_how_many(rows: Rows) -> None:
    rows.add("big", 1, [_device("host", 100, 900, 100)], session="s1")  # 800 MiB, first kernel
    rows.add("small", 2, [_device("host", 100, 300, 100)], session="s1")
    rows.add("big", 5, [_device("host", 100, 200, 100)], session="s2")  # after a restart: 100
    found = _top(rows)
    assert [(r["cell_id"], r["runs"], r["value"] / MiB) for r in found] == [
        ("small", 1, 200),
        ("big", 2, 100),
    ]
    assert found[1]["cell"] == 5
    assert found[1]["session"] == "s2"


def test_a_cell_the_kernel_died_in_ranks_with_what_it_had_and_says_died(rows: Rows) -> None:
    rows.add("warm", 1, [_device("host", 100, 150, 100)])
    rows.add("doomed", 2, [_device("host", 100, 2100, 2000)], status="died", scope="gpu_scope")
    found = _top(rows)
    assert found[0]["cell_id"] == "doomed"
    assert found[0]["status"] == "died"
    assert found[0]["value"] == 2000 * MiB


def test_workers_and_container_never_rank_and_devices_rank_apart(rows: Rows) -> None:
    # issue 27 item 2: workers' and the container's memory are not this cell's
    rows.add(
        "loader",
        1,
        [
            _device("host", 100, 110, 100),
            _device("workers", 0, 5000, 0, "sampled"),
            _device("container", 1000, 9000, 1000, "sampled"),
            _device("cuda:0", 0, 700, 0),
        ],
    )
    rows.add("host-heavy", 2, [_device("host", 100, 400, 100)])
    assert [(r["cell_id"], r["device"]) for r in _top(rows)] == [
        ("loader", "cuda:0"),
        ("host-heavy", "host"),
    ]
    assert [r["cell_id"] for r in _top(rows, device="host")] == ["host-heavy", "loader"]
    assert _top(rows, device="workers") == []


def test_one_cell_run_folds_its_reports_and_time_ranks_by_wall(rows: Rows) -> None:
    # a watched cell: a timed and a gpu_scope report of one run
    rows.add("w", 1, [], scope="timed", run="r1", extra={"wall_s": 3.0}, duration=3.0)
    rows.add("w", 1, [_device("host", 100, 200, 150)], run="r1", duration=2.9)
    rows.add("quick", 2, [], scope="timed", extra={"wall_s": 0.5}, duration=0.5)
    assert len(cell_runs(rows.conn, TopQuery(notebook=NB))) == 2
    found = _top(rows, by="time")
    assert [(r["cell_id"], r["runs"], r["value"]) for r in found] == [
        ("w", 1, 3.0),
        ("quick", 1, 0.5),
    ]
    assert found[0]["held_bytes"] == 50 * MiB  # the row's device figures come along
    assert [r["value"] / MiB for r in _top(rows, by="held")] == [50]


def test_this_notebook_and_this_session_keep_the_others_out(rows: Rows) -> None:
    rows.add("a", 1, [_device("host", 0, 10, 0)], session="s1")
    rows.add("b", 1, [_device("host", 0, 20, 0)], session="s2")
    rows.add("c", 1, [_device("host", 0, 30, 0)], session="s2", notebook="other.ipynb")
    assert [r["cell_id"] for r in _top(rows)] == ["b", "a"]
    assert [r["cell_id"] for r in _top(rows, session="s1")] == ["a"]
    everywhere = TopQuery(any_notebook=True)
    assert len(top_of(rows.conn, everywhere)) == 3


def test_running_rows_of_a_live_kernel_do_not_rank(rows: Rows) -> None:
    rows.add("now", 1, [_device("host", 0, 500, 0)], status="running")
    assert _top(rows) == []


def test_the_facade_reads_a_store_file_and_refuses_bad_arguments(rows: Rows) -> None:
    rows.add("a", 1, [_device("host", 0, 10, 0)])
    rows.conn.close()
    table = resmagic.top(notebook=NB, path=rows.path)
    assert list(table["cell_id"]) == ["a"]
    assert table["peak_above_start_bytes"].dtype == "Int64"
    with pytest.raises(ValueError, match="by takes one of peak, held, time"):
        resmagic.top(by="memory", path=rows.path)
    with pytest.raises(ValueError, match="session takes"):
        resmagic.top(session="mine", path=rows.path)
    with pytest.raises(ValueError, match="positive number"):
        resmagic.top(0, path=rows.path)


def test_an_older_store_without_rows_reads_as_no_cells(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    sqlite3.connect(path).close()  # an empty file: adopted as a store when read
    assert resmagic.top(notebook=NB, path=str(path)).empty


def test_a_died_cell_is_named_even_past_n_or_with_no_figures(rows: Rows) -> None:
    for i in range(3):
        rows.add(f"big{i}", i, [_device("host", 0, 100 + i, 0)])
    rows.add("small-died", 7, [_device("host", 0, 1, 0)], status="died")
    rows.add("no-sample-died", 8, [], status="died")  # killed before its first sample
    found = _top(rows, n=2)
    assert [(r["cell_id"], r["status"]) for r in found] == [
        ("big2", "ok"),
        ("big1", "ok"),
        ("small-died", "died"),
        ("no-sample-died", "died"),
    ]
    assert [r["rank"] for r in found] == [1, 2, 3, 4]
    assert found[2]["value"] == 1 * MiB
    assert found[3]["value"] == 0
