"""Where a report goes in a terminal: on a line of its own, after any output of the cell.

Reliability 2026-12-06, finding 9(a): IPython's own tests with watch mode on glued a report
onto the output of an ``%alias`` (``...out arg2.01 ms, cpu ...``): a shell command writes
to fd 1, which neither ``sys.stdout`` nor IPython's output history sees.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect  # type: ignore[import-untyped]  # IPython's own dependency on POSIX
import pytest

pytestmark = pytest.mark.usefixtures("fresh_history")


@pytest.fixture
def watching(ip: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    # As in terminal IPython: IPython's test shell prints a command's output through
    # sys.stdout instead (its conftest's xsys), which the output history does see.
    monkeypatch.setattr(ip, "system", ip.system_raw)
    ip.run_line_magic("resmagic", "watch on --no-panel --scopes timed")
    yield ip
    ip.run_line_magic("resmagic", "watch off")
    ip.run_cell("pass", store_history=True)  # the 'off' cell itself closes here


def _report_line(out: str, after: str) -> str:
    lines = out.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(after))
    assert lines[at] == after, f"the report was glued onto the output: {lines[at]!r}"
    return lines[at + 1]


@pytest.mark.parametrize(
    "cell",
    [
        "!printf 'out arg'",
        "say_it",
        "get_ipython().system_raw(\"printf 'out arg'\")",
    ],
)
def test_report_after_a_shell_command_without_a_newline_starts_a_line(
    watching: Any, capfd: pytest.CaptureFixture[str], cell: str
) -> None:
    watching.run_line_magic("alias", "say_it printf 'out arg'")
    capfd.readouterr()
    assert watching.run_cell(cell, store_history=True).success
    line = _report_line(capfd.readouterr().out, "out arg")
    assert re.match(r"[\d.]+ [µm]?s, cpu ", line), line


def test_report_after_python_output_then_a_command_follows_python(
    watching: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    # Python wrote last, with its newline: no extra line for the command before it.
    if not isinstance(getattr(watching.history_manager, "outputs", None), dict):
        # Without a per-cell output record the report cannot tell Python's write after the
        # command from none: it starts a fresh line, an empty one here (documented).
        pytest.skip(
            "IPython < 9 keeps no per-cell output to tell Python's output after a command by"
        )
    capfd.readouterr()
    assert watching.run_cell("!printf 'out arg'\nprint('done')", store_history=True).success
    out = capfd.readouterr().out
    assert "out argdone\n" in out
    assert re.match(r"[\d.]+ [µm]?s, cpu ", _report_line(out, "out argdone")), out


def test_the_shells_system_is_put_back_on_unload(ip: Any) -> None:
    ip.run_line_magic("unload_ext", "resmagic")
    plain = {name: ip.__dict__.get(name) for name in ("system", "system_raw")}
    ip.run_line_magic("load_ext", "resmagic")
    assert all(ip.__dict__.get(name) is not own for name, own in plain.items())
    ip.run_line_magic("unload_ext", "resmagic")
    try:
        assert {name: ip.__dict__.get(name) for name in plain} == plain
    finally:
        ip.run_line_magic("load_ext", "resmagic")


def _screen(raw: str, width: int) -> list[str]:
    """What a VT100 terminal of ``width`` columns shows for ``raw`` (text, CR, LF, wrap)."""
    raw = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]|\x07", "", raw)
    lines: list[list[str]] = [[]]
    row, col, pending = 0, 0, False  # pending: at the last column, the wrap not done yet
    for char in raw:
        if char == "\r":
            col, pending = 0, False
        elif char == "\n":
            row, pending = row + 1, False
            lines += [[] for _ in range(row + 1 - len(lines))]
        elif char.isprintable():
            if pending:
                row, col, pending = row + 1, 0, False
                lines += [[] for _ in range(row + 1 - len(lines))]
            line = lines[row]
            line += [" "] * (col + 1 - len(line))
            line[col] = char
            col, pending = (col, True) if col == width - 1 else (col + 1, False)
    return ["".join(line).rstrip() for line in lines]


@pytest.mark.parametrize("columns", [80, 37])
def test_report_in_a_real_terminal_starts_a_line_and_adds_none(
    tmp_path: Path, columns: int
) -> None:
    # A real `ipython` on a pseudo-terminal: the command writes to the terminal itself.
    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), "TERM": "dumb"}
    child = pexpect.spawn(
        sys.executable,
        ["-m", "IPython", "--simple-prompt", "--colors=nocolor", "--no-banner"],
        env=env,
        cwd=str(tmp_path),
        dimensions=(24, columns),
        encoding="utf-8",
        timeout=60,
    )
    child.logfile_read = seen = io.StringIO()
    try:
        for line in [
            "%load_ext resmagic",
            "%resmagic watch on --no-panel --scopes timed",
            "!printf 'out arg'",
            "!echo 'whole line'",
            "exit",
        ]:
            child.expect_exact("In [")
            child.sendline(line)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    screen = _screen(seen.getvalue(), columns)
    report = re.compile(r"[\d.]+ [µm]?s, cpu ")
    at = screen.index("out arg")  # not "out arg2.01 ms, cpu ..."
    assert report.match(screen[at + 1]), screen
    at = screen.index("whole line")
    assert report.match(screen[at + 1]), screen  # no empty line after a whole line
