"""A thousand cells through every magic leave nothing behind (handlers, fds, threads, memory)."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any

import pytest

import resmagic
from resmagic.probes import host
from resmagic.store.recorder import recorder
from tests.threads import settled_thread_count

CELLS = int(os.environ.get("RESMAGIC_SOAK_CELLS", "1000"))


def _cells(tmp: Path) -> list[tuple[str, bool]]:
    """The rotation: (cell source, raises?) covering every magic, alone and stacked."""
    db = tmp / "soak.db"
    log = tmp / "soak.log"
    return [
        ("%%timed soak -q\nsum(range(100))", False),
        ("%%gpu_scope -q\nbuf = bytearray(1 << 20)\nlen(buf)", False),
        (f"%%experiment_log {log} -q\nlogger.info('cell %d', 1)", False),
        (f"%%db_transaction {db} -q\ncursor.execute('insert into t values (1)')", False),
        (f"%%timed -q\n%%gpu_scope -q\n%%experiment_log {log} -q\nlogger.info('x')\n1 / 0", True),
        (
            f"%%db_transaction {db} -q\ncursor.execute('insert into t values (2)')\nraise KeyError",
            True,
        ),
        (
            f"%%experiment_log {log} --format jsonl -q\n"
            "logger.handlers[-1].close()\nraise ValueError",
            True,
        ),
        (
            f"%%timed -q\n%%db_transaction {db} -q\n"
            "cursor.execute('select count(*) from t').fetchone()",
            False,
        ),
    ]


def _resources() -> dict[str, int]:
    gc.collect()
    return {
        "handlers": sum(
            len(lg.handlers)
            for lg in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
            if isinstance(lg, logging.Logger)
        ),
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": settled_thread_count(),
        "rss": host.rss_bytes(),
    }


def test_thousand_cells_leave_handlers_fds_threads_and_memory_flat(
    ip: Any, tmp_path: Path, fresh_history: None, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "soak.db") as db:
        db.execute("create table t (x)")
    cells = _cells(tmp_path)
    old_limit = resmagic.settings.history_limit
    resmagic.settings.history_limit = 200  # bounded history: the rest must not grow either
    try:
        for i in range(len(cells) * 4):  # warm-up: first-use caches, lazy imports
            ip.run_cell(cells[i % len(cells)][0], store_history=True)
        # The run store opens its connection and its state file on the writer thread, after
        # a gather window (0.05 s): 32 warm-up cells can end before it has, and a store that
        # an earlier test switched away from and back reopens then (3 + 2 fds counted as
        # growth). Settled first, so a leak per cell still shows.
        recorder.flush()
        start = _resources()
        failures = 0
        for i in range(CELLS):
            source, raises = cells[i % len(cells)]
            result = ip.run_cell(source, store_history=True)
            assert (result.error_in_exec is not None) == raises, source
            failures += raises
            if i % 100 == 0:
                capsys.readouterr()  # tracebacks pile up in the capture buffer otherwise
        end = _resources()
    finally:
        resmagic.settings.history_limit = old_limit
    assert failures > CELLS // 4
    assert len(resmagic.history()) == 200
    assert end["handlers"] == start["handlers"]
    assert end["fds"] == start["fds"]
    assert end["threads"] == start["threads"]
    # IPython keeps its own per-cell state (input history, linecache): a few MiB per 1000 cells.
    assert end["rss"] - start["rss"] < 32 << 20, end["rss"] - start["rss"]
    print(f"\n{CELLS} cells: {start} -> {end}")
