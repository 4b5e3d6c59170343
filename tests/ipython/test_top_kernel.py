"""``%resmagic top`` in real kernels: across a clean restart and a SIGKILL, by the cells' ids.

Three kernels on one notebook (``JPY_SESSION_NAME``) and one store: the first runs two cells
and shuts down; the second runs the first cell again and is SIGKILLed while a third cell
holds memory; the third kernel's ``%resmagic top`` ranks the dead cell first, says it died,
counts the rerun, and its HTML rows jump by the ids the frontend sent.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

from tests.kernel import Kernel

MiB = 1 << 20
GROW = "{0} = bytearray({1} << 20)\nfor i in range(0, len({0}), 4096): {0}[i] = 1"


def _env(profile: Path) -> dict[str, str]:
    return {**os.environ, "IPYTHONDIR": str(profile), "JPY_SESSION_NAME": "work/top.ipynb"}


def _grown(store: Path, cell_id: str, mib: int) -> bool:
    """The running row of ``cell_id`` has sampled a host peak ``mib`` above its start."""
    conn = sqlite3.connect(store)
    try:
        row = conn.execute(
            "SELECT devices FROM reports WHERE cell_id = ? AND status = 'running'", (cell_id,)
        ).fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    devices = json.loads(row[0]) if row and row[0] else []
    return any(
        d["name"] == "host" and d["peak_bytes"] - d["before_bytes"] >= mib * MiB for d in devices
    )


def test_top_ranks_cells_across_a_restart_and_names_the_cell_a_killed_kernel_died_in(
    tmp_path: Path,
) -> None:
    profile = tmp_path / "ipython"
    store = profile / "profile_default" / "resmagic.sqlite"
    with Kernel(env=_env(profile)) as first:
        first.run("%load_ext resmagic")
        assert (
            first.run(f"%%gpu_scope -q host\n{GROW.format('a', 64)}", cell_id="c-a").status == "ok"
        )
        assert (
            first.run(f"%%gpu_scope -q host\n{GROW.format('b', 24)}", cell_id="c-b").status == "ok"
        )
        assert first.run("%unload_ext resmagic").status == "ok"  # a clean restart
    second = Kernel(env=_env(profile))
    try:
        second.run("%load_ext resmagic")
        # c-a again: smaller this time; its last run is what ranks, with 2 runs
        assert (
            second.run(f"%%gpu_scope -q host\n{GROW.format('a', 8)}", cell_id="c-a").status == "ok"
        )
        second.start(
            # grows at once, before the writer's first sample of its running row: that row's
            # "before" is the one the scope opened with, not the first sample's
            f"%%gpu_scope -q host\n{GROW.format('d', 160)}\nimport time\ntime.sleep(60)",
            cell_id="c-doomed",
        )
        deadline = time.monotonic() + 60
        while not _grown(store, "c-doomed", 150):
            assert time.monotonic() < deadline, "the running row never showed the cell's growth"
            time.sleep(0.05)
        os.kill(second.pid, signal.SIGKILL)
    finally:
        second.close()
    with Kernel(env=_env(profile)) as third:
        third.run("%load_ext resmagic")
        shown = third.run("%resmagic top", cell_id="c-top")
        assert shown.status == "ok"
        data = shown.result
        assert data is not None
        lines = data["text/plain"].splitlines()
        assert lines[0] == (
            "cells that used the most, by peak above start: top.ipynb, every kernel session"
        )
        rows = [line.split() for line in lines[2:]]
        assert [(r[0], r[2]) for r in rows] == [("1", "[3],"), ("2", "[3],"), ("3", "[2],")]
        assert "died" in lines[2]
        assert lines[3].split()[-2:] == ["1", "ok"]  # c-b: 24 MiB, once
        assert lines[4].split()[-2:] == ["2", "ok"]  # c-a: 8 MiB last time, two runs
        page = data["text/html"]
        order = [page.index(f"#cell-id={c}'") for c in ("c-doomed", "c-b", "c-a")]
        assert order == sorted(order)
        assert page.count("class='rm-jump'") == 3
        mine = third.run("%resmagic top --session this").result
        assert mine is not None
        assert "none yet" in mine["text/plain"]
        assert third.run("%unload_ext resmagic").status == "ok"
