"""A cell run keeps its first ``store_per_cell`` reports of each scope and label in the store.

A loop of blocks (``with timed("step")`` a hundred thousand times) must not fill the store
and push every other cell out of it; the measured cell's own reports are always kept.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resmagic import timings
from resmagic.bus import clear_history
from resmagic.config import settings
from resmagic.store.capping import Cap
from resmagic.store.recorder import recorder

LOOP = "from resmagic import timed\nfor _ in range({n}):\n    with timed({label!r}):\n        pass"


@pytest.fixture
def cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """A cap of 5 reports per scope and label, and the recorder's count from zero."""
    monkeypatch.setattr(settings, "store_per_cell", 5)
    monkeypatch.setattr(recorder, "cap", Cap())
    return 5


def _stored(path: Path) -> list[tuple[int, str, str | None, int, int]]:
    """(cell, scope, label, rows, distinct runs) per cell, scope and label, in cell order."""
    assert recorder.flush()
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT cell, scope, label, count(*), count(DISTINCT run) FROM reports"
            " GROUP BY cell, scope, label ORDER BY cell, scope, label"
        ).fetchall()
    finally:
        conn.close()


def test_a_plain_cells_loop_stores_its_first_reports_and_says_so_once(
    ip: Any, store: Path, cap: int, capsys: pytest.CaptureFixture[str]
) -> None:
    start = ip.execution_count
    assert ip.run_cell(LOOP.format(n=12, label="step"), store_history=True).success
    assert ip.run_cell(LOOP.format(n=12, label="other"), store_history=True).success
    err = capsys.readouterr().err
    rows = _stored(store)
    assert [(cell - start, scope, label, n, runs) for cell, scope, label, n, runs in rows] == [
        (0, "timed", "step", cap, cap),  # each report still a run of its own
        (1, "timed", "other", cap, cap),  # each cell counts for itself
    ]
    assert err.count("ran more than 5 times in one cell") == 1
    assert "timed 'step' ran more than 5 times" in err
    assert "timings() still counts every one" in err
    assert "%resmagic config store_per_cell=N" in err
    assert recorder.cap.past == 14
    ip.run_line_magic("resmagic", "status")
    assert "; 14 reports not stored (past their cell's store_per_cell)" in capsys.readouterr().out


def test_every_report_is_still_counted_in_timings(ip: Any, store: Path, cap: int) -> None:
    label = "counted past the cap"
    assert ip.run_cell(LOOP.format(n=3 * cap, label=label), store_history=True).success
    assert {row.label: row.count for row in timings()}[label] == 3 * cap


def test_a_measured_cells_own_report_is_stored_past_the_cap(ip: Any, store: Path, cap: int) -> None:
    # The inner blocks share the cell's scope and label: its own report comes last of them.
    start = ip.execution_count
    cell = "%%timed train\n%%gpu_scope -q host\n" + LOOP.format(n=12, label="train")
    assert ip.run_cell(cell, store_history=True).success
    rows = _stored(store)
    assert [(cell - start, scope, label, n, runs) for cell, scope, label, n, runs in rows] == [
        (0, "gpu_scope", None, 1, 1),
        (0, "timed", "train", cap + 1, 1),  # the loop's first 5 and the cell's own
    ]


@pytest.mark.parametrize(
    "cell",
    [
        "%%time\n%%timed outer\n" + LOOP.format(n=12, label="outer"),  # our magic, called
        "get_ipython().run_cell_magic('timed', 'outer', {!r})".format(
            LOOP.format(n=12, label="outer")
        ),
    ],
    ids=["under %%time", "run_cell_magic"],
)
def test_our_magic_running_its_own_body_stores_its_own_report_past_the_cap(
    ip: Any, store: Path, cap: int, cell: str
) -> None:
    assert ip.run_cell(cell, store_history=True).success
    assert [row[2:] for row in _stored(store)] == [("outer", cap + 1, cap + 1)]
    assert recorder.cap.past == 12 - cap


def test_other_scopes_are_capped_by_their_path_and_not_said_to_be_in_timings(
    ip: Any, store: Path, cap: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    cell = (
        "from resmagic import db_transaction\n"
        f"for _ in range(7):\n    for path in ({str(a)!r}, {str(b)!r}):\n"
        "        with db_transaction(path):\n            pass"
    )
    assert ip.run_cell(cell, store_history=True).success
    err = capsys.readouterr().err
    assert [row[1:4] for row in _stored(store)] == [
        ("db_transaction", str(a), cap),  # a count per database, as the label column
        ("db_transaction", str(b), cap),
    ]
    assert "ran more than 5 times in one cell" in err
    assert "timings()" not in err  # it counts timed blocks only
    assert "history() and any sink still get them" in err


def test_reports_from_another_thread_share_their_cells_count(
    ip: Any, store: Path, cap: int
) -> None:
    cell = (
        "import threading\nfrom resmagic import timed\n"
        "def work():\n    for _ in range(12):\n        with timed('worker'):\n            pass\n"
        "t = threading.Thread(target=work)\nt.start()\nt.join()"
    )
    assert ip.run_cell(cell, store_history=True).success
    assert [row[2:] for row in _stored(store)] == [("worker", cap, cap)]


def test_a_long_loop_no_longer_pushes_an_earlier_cell_out_of_the_store(
    ip: Any, store: Path, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before the cap, 200 reports into a store of 50 kept only the loop's newest 50.
    monkeypatch.setattr(settings, "store_limit", 50)
    assert ip.run_cell("%%timed -q earlier\nx = 1", store_history=True).success
    assert recorder.flush()
    assert ip.run_cell(LOOP.format(n=200, label="step"), store_history=True).success
    clear_history()
    recorder.read(lambda conn: None)  # an exact trim, then the rows as a read sees them
    labels = [row[2] for row in _stored(store)]
    assert labels == ["earlier", "step"]


def test_a_script_is_warned_at_its_own_line_with_the_setting_to_change(tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    store = str(tmp_path / "s.sqlite")
    script.write_text(
        "import resmagic\n"
        f"resmagic.settings.update(store={store!r}, store_per_cell=3)\n"
        "for _ in range(5):\n"
        "    with resmagic.timed('step'):\n"
        "        pass\n"
        "resmagic.store.recorder.recorder.flush()\n"
        "print(resmagic.store.recorder.recorder.cap.past)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "2"
    warned = f"{script}:4: RuntimeWarning: resmagic: timed 'step' ran more than 3 times in this"
    assert warned in done.stderr
    assert "resmagic.settings.update(store_per_cell=N)" in done.stderr
    assert done.stderr.count("RuntimeWarning") == 1
