"""The seven ways v1 changed what a cell means (issue 13), each as plain IPython behaves.

Each test runs the reproduction from the issue and compares it with the same cell run
without resmagic's lines (commented out, as the header transformer leaves them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

import resmagic
from resmagic.report import GpuReport, TimingReport
from tests.kernel import Kernel

pytestmark = pytest.mark.usefixtures("fresh_history")

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _shown(ip: Any, cell: str, capsys: pytest.CaptureFixture[str]) -> str:
    """What running ``cell`` prints, with the cell number made neutral."""
    capsys.readouterr()
    ip.run_cell(cell, store_history=True)
    out = ANSI.sub("", capsys.readouterr().out)
    return re.sub(r"(Cell In|Input In)\[\d+\]", r"\1[N]", out)


def _as_plain(cell: str) -> str:
    """``cell`` with our leading ``%%`` lines commented out, as IPython then runs it."""
    lines = cell.split("\n")
    n = 0
    while n < len(lines) and lines[n].startswith("%%") and lines[n][2:].split()[0] in MAGICS:
        n += 1
    return "\n".join([f"# {line}" for line in lines[:n]] + lines[n:])


MAGICS = {"timed", "gpu_scope", "experiment_log", "db_transaction"}


# 1. no extra top frame, no "skipping hidden frames" line, no blank numbered line
@pytest.mark.parametrize(
    "cell",
    [
        "%%timed\n1/0",
        "%%timed -q\n%%gpu_scope -q\na = 1\n\nb = a / 0",
        "%%timed -q\ndef f(n):\n    return g(n)\ndef g(n):\n    raise KeyError(n)\nf(3)",
    ],
)
def test_error_traceback_is_the_plain_cells(
    ip: Any, cell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = _shown(ip, cell.replace("%%timed\n", "%%timed -q\n"), capsys)
    assert "run_cell_magic" not in shown
    assert "skipping hidden" not in shown
    assert shown == _shown(ip, _as_plain(cell.replace("%%timed\n", "%%timed -q\n")), capsys)


# 2. none of resmagic's own frames, in any mode or error kind
@pytest.mark.parametrize(
    ("cell", "before"),
    [
        ("%%timed -q\nx = (1,", None),
        ("%%timed -q\ncompile('x = (', '<s>', 'exec')", None),
        ("%%timed -q\n%%gpu_scope -q\nimport math\nmath.sqrt(-1)", "%xmode plain"),
        ("%%timed -q\n%%gpu_scope -q\nimport math\nmath.sqrt(-1)", "%xmode verbose"),
    ],
)
def test_no_frame_of_ours_is_printed(
    ip: Any, cell: str, before: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    if before:
        ip.run_line_magic("xmode", before.split()[1])
    try:
        shown = _shown(ip, cell, capsys)
        plain = _shown(ip, _as_plain(cell), capsys)
    finally:
        ip.run_line_magic("xmode", "context")
    assert "resmagic" not in shown.replace("# %%", "")
    assert shown == plain


def test_oom_traceback_shows_the_users_frames_with_their_arguments(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell(
        "def step(n):\n    held = bytearray(n)\n    raise MemoryError('batch too big')",
        store_history=True,
    )
    shown = _shown(ip, "%%gpu_scope -q --reclaim oom\nstep(1 << 20)", capsys)
    assert "in step(n)" in shown
    assert "failed resolving arguments" not in shown
    assert "resmagic" not in shown.replace("# %%", "")
    report = resmagic.history()[-1]
    assert isinstance(report, GpuReport)
    assert report.reclaimed


# 3. __future__ after another statement: IPython runs such a cell
def test_future_import_after_a_statement_runs(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cell = "%%timed -q\nimport sys\nfrom __future__ import annotations\nprint('ran')"
    assert _shown(ip, cell, capsys) == "ran\n"


# 4. a non-Python cell magic under ours is IPython's own
def test_bash_under_our_magic_runs_as_bash(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cell = "%%timed -q\n%%bash\nif true; then\n    echo a\n  echo b\nfi"
    capsys.readouterr()
    result = ip.run_cell(cell, store_history=True)
    assert result.success
    assert capsys.readouterr().out == "a\nb\n"
    assert resmagic.history()[-1].status == "ok"


# 5. watch mode and %%capture: the capturing cell is measured, the capture holds the body's
@pytest.fixture
def watching(ip: Any) -> Iterator[Any]:
    ip.run_line_magic("resmagic", "watch on --scopes timed --no-panel")
    yield ip
    ip.run_line_magic("resmagic", "watch off")
    ip.run_cell("pass", store_history=True)


def test_capture_under_watch_mode_is_one_cell(watching: Any) -> None:
    resmagic.clear_history()
    result = watching.run_cell("%%capture cap\nprint('inside')", store_history=True)
    assert result.success
    assert watching.user_ns["cap"].stdout == "inside\n"
    reports = resmagic.history()
    assert [(r.scope, r.status, r.cell) for r in reports] == [
        ("timed", "ok", result.execution_count)
    ]


def test_our_magic_inside_capture_reports_into_the_capture(ip: Any) -> None:
    result = ip.run_cell("%%capture cap\n%%timed inner\nprint('x')", store_history=True)
    assert result.success
    assert ip.user_ns["cap"].stdout.startswith("x\ntimed  inner")
    report = resmagic.history()[-1]
    assert isinstance(report, TimingReport)
    assert report.label == "inner"


# 6 and 7 need a kernel: what the frontend gets
@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with Kernel() as k:
        assert k.run("%load_ext resmagic").status == "ok"
        assert k.run("%resmagic watch on --no-panel").status == "ok"
        yield k


@pytest.mark.kernel
def test_pending_clear_does_not_erase_the_cells_output(kernel: Kernel) -> None:
    cell = "from IPython.display import clear_output\nprint('result')\nclear_output(wait=True)"
    run = kernel.run(cell)
    kinds = [m["msg_type"] for m in run.messages if m["msg_type"] != "status"]
    clear = kinds.index("clear_output")
    # After the pending clear nothing but updates of our placeholder: no new output.
    assert set(kinds[clear + 1 :]) <= {"update_display_data"}
    assert ", cpu " in run.report_text  # the watched cell's one compact line
    assert run.stdout == "result\n"


@pytest.mark.kernel
def test_output_after_a_clear_lets_the_report_be_a_new_output(kernel: Kernel) -> None:
    cell = (
        "from IPython.display import clear_output\n"
        "for i in range(3):\n    clear_output(wait=True)\n    print(i)"
    )
    run = kernel.run(cell)
    kinds = [m["msg_type"] for m in run.messages if m["msg_type"] != "status"]
    assert kinds[-1] == "display_data"  # the report, shown: the clear was consumed by print
    assert ", cpu " in run.report_text  # the watched cell's one compact line


@pytest.mark.kernel
def test_a_cell_that_shows_no_report_gets_no_placeholder_at_a_pending_clear() -> None:
    # nbclient's "Clear Output" notebook: a cell ending in clear_output(wait=True) had an
    # empty output of ours under it once resmagic was loaded, in a plain cell and under
    # %%timed -q alike (no report would fill it).
    cell = "from IPython.display import clear_output\nprint('result')\nclear_output(wait=True)"
    with Kernel() as k:
        assert k.run("%load_ext resmagic").status == "ok"
        for source in (cell, "%%timed -q\n" + cell, "%%gpu_scope -q\n" + cell):
            run = k.run(source)
            kinds = [m["msg_type"] for m in run.messages if m["msg_type"] != "status"]
            assert "display_data" not in kinds, (source, kinds)
            assert run.stdout == "result\n"
        shown = k.run("%%timed\n" + cell)  # a report follows: the placeholder is still made
        kinds = [m["msg_type"] for m in shown.messages if m["msg_type"] != "status"]
        assert kinds.index("display_data") < kinds.index("clear_output")
        assert "timed  wall " in shown.report_text


@pytest.mark.kernel
def test_report_never_joins_unfinished_output(kernel: Kernel) -> None:
    run = kernel.run("print('x', end='')")
    assert run.stdout == "x"
    assert " · host " in run.report_text.splitlines()[0]


def test_report_starts_on_a_new_line_in_a_terminal(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    if not isinstance(getattr(ip.history_manager, "outputs", None), dict):
        pytest.skip("IPython < 9 keeps no per-cell output to tell an unfinished line by")
    capsys.readouterr()
    ip.run_cell("%%timed\nprint('x', end='')", store_history=True)
    assert capsys.readouterr().out.startswith("x\ntimed  wall ")
    ip.run_cell("%%timed\nprint('y')", store_history=True)
    assert capsys.readouterr().out.startswith("y\ntimed  wall ")
