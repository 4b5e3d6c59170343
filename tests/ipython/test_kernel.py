"""What only a real ipykernel shows: execute results, error replies, interrupts, nbclient runs."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from tests.kernel import Execution, Kernel

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with Kernel() as k:
        assert k.run("%load_ext resmagic").status == "ok"
        yield k


def test_stacked_cell_has_an_execute_result(kernel: Kernel, tmp_path: Path) -> None:
    log = tmp_path / "k.log"
    run = kernel.run(f"%%timed train\n%%gpu_scope --no-panel\n%%experiment_log {log}\nx = 6\nx * 7")
    assert run.status == "ok"
    assert run.result is not None
    assert run.result["text/plain"] == "42"
    assert "timed  train" in run.report_text
    assert "experiment end: ok" in log.read_text()


def _traceback(run: Execution) -> str:
    assert run.error is not None
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(run.error["traceback"]))
    return re.sub(r"Cell In\[\d+\]", "Cell In[N]", text)


def test_error_reply_and_traceback_are_a_plain_cells(kernel: Kernel) -> None:
    run = kernel.run("%%timed\na = 1\nb = a / 0")
    plain = kernel.run("# %%timed\na = 1\nb = a / 0")
    assert run.status == "error"
    assert run.error is not None
    assert run.error["ename"] == "ZeroDivisionError"
    traceback = _traceback(run)
    assert "line 3" in traceback
    assert "----> 3 b = a / 0" in traceback
    assert traceback == _traceback(plain)  # no frame of ours, no hidden-frames line


def test_interrupt_ends_the_cell_as_interrupted_and_the_kernel_goes_on(
    kernel: Kernel, tmp_path: Path
) -> None:
    log = tmp_path / "int.log"
    msg_id = kernel.start(
        f"%%timed\n%%gpu_scope --no-panel\n%%experiment_log {log}\nimport time\ntime.sleep(30)"
    )
    deadline = time.monotonic() + 20
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    kernel.km.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=20)
    assert run.status == "error"
    assert run.error is not None
    assert run.error["ename"] == "KeyboardInterrupt"
    assert "experiment end: interrupted" in log.read_text()
    statuses = kernel.value("[r.status for r in __import__('resmagic').history()[-3:]]")
    assert statuses == ["interrupted"] * 3
    handlers = kernel.value("len(__import__('logging').getLogger('experiment').handlers)")
    assert handlers == 0
    assert kernel.run("%%timed -q\n'still alive'").result == {"text/plain": "'still alive'"}


def test_nbclient_stops_at_the_failing_magic_cell(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext resmagic"),
        nbformat.v4.new_code_cell("%%timed\nraise ValueError('stop here')"),
        nbformat.v4.new_code_cell("print('never')"),
    ]
    client = NotebookClient(nb, timeout=60, kernel_name="python3")
    with pytest.raises(CellExecutionError, match="stop here"):
        client.execute(cwd=str(tmp_path))
    assert nb.cells[2].get("outputs", []) == []


def test_top_level_await_runs_on_the_kernels_loop(kernel: Kernel) -> None:
    run = kernel.run(
        "%%timed\n%%gpu_scope --no-panel\nimport asyncio\nawait asyncio.sleep(0.01, result=7)"
    )
    assert run.status == "ok"
    assert run.result == {"text/plain": "7"}
    assert "timed  wall" in run.report_text


def test_a_held_by_line_counts_the_holders_it_leaves_out(kernel: Kernel) -> None:
    # UX audit 2026-12-06 P3-3: six list items held, three named, no word of the rest
    kernel.run("%resmagic config held_mib=32")
    try:
        run = kernel.run(
            "%%gpu_scope --no-panel host\ncache = [bytearray(b'x') * (16 << 20) for _ in range(6)]"
        )
    finally:
        kernel.run("%resmagic config held_mib=256\ncache = None")
    line = next(t for t in run.report_text.splitlines() if "held by" in t)
    assert line == (
        "  host held by: cache[0] 16.0 MiB · cache[1] 16.0 MiB · cache[2] 16.0 MiB"
        " · and 3 more (48.0 MiB)"
    )


def _delta_held(run: Execution) -> list[str]:
    """``data-held`` of each Δ cell in the panel summary the cell ended with."""
    ended = [d["text/html"] for d in run.reports if "rm-delta" in d.get("text/html", "")]
    assert ended, "no panel summary"
    return re.findall(r"class='rm-delta' data-held='(\w+)'", ended[-1])


def test_the_delta_is_orange_only_when_the_cells_variables_hold_it(kernel: Kernel) -> None:
    # UX audit 2026-12-06 P2-3: +108 MiB in orange after a training cell, while `who` said
    # most of it was reachable from no variable
    kernel.run("%resmagic config held_mib=32")
    hidden = (
        "__import__('sys').modules['rm_hidden'] ="
        " __import__('types').SimpleNamespace(blob=bytearray(b'x') * (64 << 20))"
    )
    try:
        theirs = kernel.run(f"%%gpu_scope host\n{hidden}")
        mine = kernel.run("%%gpu_scope host\nkeep_ = bytearray(b'x') * (64 << 20)")
    finally:
        kernel.run("%resmagic config held_mib=256\nkeep_ = None")
        kernel.run("del __import__('sys').modules['rm_hidden']")
    assert _delta_held(theirs) == ["false"]
    said = next(t for t in theirs.report_text.splitlines() if "held by" in t)
    assert re.search(r" · \+6\d\.\d MiB of \+6\d\.\d MiB not held by your variables \(", said)
    assert _delta_held(mine) == ["true"]
    assert "not held by your variables" not in mine.report_text
    # under held_mib no held-by line, but the panel still looks before going orange; the
    # 64 MiB keep_ holds from the cell before is not the next cell's
    small = kernel.run("%%gpu_scope host\nkeep_ = bytearray(b'x') * (64 << 20)")
    hidden_small = kernel.run(f"%%gpu_scope host\n{hidden.replace('rm_hidden', 'rm_hidden2')}")
    kernel.run("keep_ = None\ndel __import__('sys').modules['rm_hidden2']")
    assert _delta_held(small) == ["true"]
    assert _delta_held(hidden_small) == ["false"]
