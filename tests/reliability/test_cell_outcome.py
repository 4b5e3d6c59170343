"""A cell's outcome in a real kernel: OOM recovery after a plain traceback, failures at close.

IPython runs the body and formats its traceback; the scopes close afterwards, in
``post_run_cell``. So after an out-of-memory error the traceback is the plain cell's (the
user's frames, with their arguments), and only then are the frames freed. A scope that
fails while closing (a commit the database refuses) fails the cell: the reply says error
and Run All stops there.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.kernel import Execution, Kernel

pytestmark = pytest.mark.kernel

STEP = "def step(n):\n    held = bytearray(b'x') * n\n    raise MemoryError('batch too big')"
HELD_MIB = (
    "import gc\nfrom resmagic.probes import host\ngc.collect()\n(host.rss_bytes() - base) >> 20"
)


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with Kernel() as k:
        assert k.run("%load_ext resmagic").status == "ok"
        assert k.run(STEP).status == "ok"
        yield k


def _held_after(kernel: Kernel, cell: str) -> tuple[int, Execution]:
    """MiB still held after ``cell`` fails with MemoryError, and the failing execution."""
    kernel.run("1")  # IPython lets go of the previous traceback
    kernel.run("import gc\nfrom resmagic.probes import host\ngc.collect()\nbase = host.rss_bytes()")
    run = kernel.run(cell)
    assert run.status == "error"
    assert run.error is not None
    assert run.error["ename"] == "MemoryError"
    held = kernel.value(HELD_MIB)
    assert isinstance(held, int)
    return held, run


def _traceback(run: Execution) -> str:
    assert run.error is not None
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(run.error["traceback"]))


def test_oom_traceback_is_the_users_and_the_memory_comes_back(kernel: Kernel) -> None:
    plain, _ = _held_after(kernel, "step(400 << 20)")
    held, run = _held_after(kernel, "%%gpu_scope --no-panel\nstep(400 << 20)")
    assert plain >= 380, f"a plain cell kept only {plain} MiB: the test shows nothing"
    assert held < 40, f"{held} MiB still held after the reclaim"
    traceback = _traceback(run)
    assert "in step(n)" in traceback
    assert "----> 2 step(400 << 20)" in traceback
    assert "failed resolving arguments" not in traceback
    assert "resmagic" not in traceback.replace("# %%gpu_scope", "")
    assert kernel.value("__import__('resmagic').history()[-1].reclaimed") is True


def test_watch_mode_reclaims_after_an_oom_too(kernel: Kernel) -> None:
    assert kernel.run("%resmagic watch on --no-panel").status == "ok"
    try:
        held, run = _held_after(kernel, "step(400 << 20)")
    finally:
        kernel.run("%resmagic watch off")
    assert held < 40, f"{held} MiB still held after the reclaim"
    assert "in step(n)" in _traceback(run)


def test_reclaim_never_keeps_the_frames_for_debug(kernel: Kernel) -> None:
    held, _ = _held_after(kernel, "%%gpu_scope --no-panel --reclaim never\nstep(400 << 20)")
    assert held >= 380
    assert kernel.value("type(__import__('sys').last_value).__name__") == "MemoryError"


def _locked_for_commit(db: Path) -> sqlite3.Connection:
    """A reader holding a shared lock: our COMMIT (which needs an exclusive one) fails."""
    with sqlite3.connect(db) as setup:
        setup.execute("create table if not exists t (x)")
    setup.close()
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("select count(*) from t").fetchall()
    return reader


def test_a_commit_that_fails_fails_the_cell(kernel: Kernel, tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    reader = _locked_for_commit(db)
    try:
        run = kernel.run(
            f"%%db_transaction {db} --timeout 0.2\ncursor.execute('insert into t values (1)')"
        )
    finally:
        reader.close()
    assert run.status == "error"
    assert run.error is not None
    assert run.error["ename"] == "OperationalError"
    assert "locked" in run.error["evalue"]
    with sqlite3.connect(db) as check:
        assert check.execute("select count(*) from t").fetchone() == (0,)
    assert kernel.value("__import__('resmagic').history()[-1].status") == "error"


def test_run_all_stops_at_a_cell_whose_commit_fails(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext resmagic"),
        nbformat.v4.new_code_cell(
            f"%%db_transaction {db} --timeout 0.2 -q\ncursor.execute('insert into t values (1)')"
        ),
        nbformat.v4.new_code_cell("print('never')"),
    ]
    reader = _locked_for_commit(db)
    try:
        with pytest.raises(CellExecutionError, match="locked"):
            NotebookClient(nb, timeout=60, kernel_name="python3").execute(cwd=str(tmp_path))
    finally:
        reader.close()
    assert nb.cells[2].get("outputs", []) == []
