"""The header transformer reads each distinct line once, and still decides every cell anew.

Issue 26 (C2): a notebook runs the same few option lines cell after cell, so a line is read
and its options parsed once. What must not be kept: a refusal (a bad line is refused each
time it runs), a ``$var`` expansion (the namespace changes), the scope (fresh per cell), and
whether the magic is still ours (another extension may take the name).
"""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError

import resmagic
from resmagic.report import TimingReport

pytestmark = pytest.mark.usefixtures("fresh_history")


def _labels() -> list[str | None]:
    return [getattr(r, "label", None) for r in resmagic.history()]


def test_a_bad_option_line_is_refused_every_time_it_runs(ip: Any) -> None:
    for _ in range(3):
        ip.user_ns.pop("ran_body", None)
        result = ip.run_cell("%%timed --no-such-option\nran_body = 1", store_history=True)
        assert isinstance(result.error_before_exec, UsageError), result
        assert "ran_body" not in ip.user_ns, "the body ran although the line was refused"
    assert resmagic.history() == []


def test_a_line_with_a_variable_is_expanded_again_in_every_cell(ip: Any) -> None:
    for step in ("s1", "s2", "s3"):
        ip.user_ns["step"] = step
        assert ip.run_cell("%%timed $step -q\npass", store_history=True).success
    assert _labels() == ["s1", "s2", "s3"]


def test_each_cell_of_a_line_read_once_gets_a_scope_of_its_own(ip: Any) -> None:
    for _ in range(3):
        assert ip.run_cell("%%timed same -q\npass", store_history=True).success
    reports = resmagic.history()
    assert len(reports) == 3
    assert all(isinstance(r, TimingReport) and r.label == "same" for r in reports)
    assert len({r.started_at for r in reports}) == 3


def test_a_line_read_before_goes_to_the_magic_that_owns_the_name_now(ip: Any) -> None:
    assert ip.run_cell("%%timed -q\nx = 1", store_history=True).success
    assert _labels() == [None]

    def timed(line: str, cell: str) -> str:
        return f"theirs: {cell.strip()}"

    ours = ip.magics_manager.magics["cell"]["timed"]
    ip.register_magic_function(timed, "cell", "timed")
    try:
        result = ip.run_cell("%%timed -q\nx = 1", store_history=True)
    finally:
        ip.magics_manager.magics["cell"]["timed"] = ours
    assert result.result == "theirs: x = 1"
    assert _labels() == [None], "our scope measured a cell another magic ran"
    assert ip.run_cell("%%timed -q\nx = 1", store_history=True).success
    assert _labels() == [None, None]


def test_a_cell_with_only_blank_lines_under_the_header_is_refused(ip: Any) -> None:
    for body in ("", "\n", "\n  \n\t\n"):
        result = ip.run_cell(f"%%timed -q\n{body}", store_history=True)
        assert isinstance(result.error_before_exec, UsageError), repr(body)
        assert "needs code under it" in str(result.error_before_exec)
    assert resmagic.history() == []
