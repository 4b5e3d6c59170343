"""The runner's two paths: IPython runs the cell (hooks), or our magic runs the body (fallback).

A cell IPython runs with its events gets its scopes from the hooks. Where IPython transforms
a cell but runs it some other way (under ``%%time`` or ``%%timeit``, a silent cell), the
header is still pending when the AST hook sees that cell, and the cell becomes the
``run_cell_magic`` call IPython would have written.
"""

from __future__ import annotations

from typing import Any

import pytest

import resmagic

pytestmark = pytest.mark.usefixtures("fresh_history")


def _labels() -> list[str | None]:
    return [getattr(r, "label", None) for r in resmagic.history()]


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("%%time\n%%timed under-time\nw = 5\nw * 2", 10),
        ("%%time\n%%timed under-time\n%%bash\necho from-bash", None),
        ("%%timeit -n1 -r1\n%%timed under-time\nw = 5", None),
    ],
)
def test_our_magic_under_a_timing_magic_runs_once_per_body_run(
    ip: Any, cell: str, value: int | None, capsys: pytest.CaptureFixture[str]
) -> None:
    result = ip.run_cell(cell, store_history=True)
    assert result.success
    assert result.result == value
    assert _labels() == ["under-time"]


def test_a_silent_cell_still_runs_inside_its_scopes(ip: Any, tmp_path: Any) -> None:
    db = tmp_path / "s.db"
    cell = f"%%db_transaction {db} -q\ncursor.execute('create table t (x)')"
    result = ip.run_cell(cell, silent=True)
    assert result.success
    assert [r.scope for r in resmagic.history()] == ["db_transaction"]


def test_a_header_transformed_but_never_run_takes_over_no_other_cell(ip: Any) -> None:
    ip.transform_cell("%%timed stale\nx = 1")  # e.g. a tool inspecting a cell
    result = ip.run_cell("y_from_plain = 2\ny_from_plain", store_history=True)
    assert result.result == 2
    ip.run_cell_magic("timed", "-q direct", "z_direct = 3")  # our magic, called from code
    assert ip.user_ns["z_direct"] == 3
    assert _labels() == ["direct"]


def test_a_nested_cell_is_a_nested_frame(ip: Any) -> None:
    body = "get_ipython().run_cell('%%timed inner -q\\nx = 1')\nx + 1"
    plain = ip.run_cell(body.replace("%%timed inner -q\\n", ""), store_history=True)
    resmagic.clear_history()
    result = ip.run_cell("%%timed outer -q\n" + body, store_history=True)
    assert result.success
    assert result.result == plain.result  # (IPython's displayhook forgets after a nested cell)
    assert ip.user_ns["_"] == 2
    assert _labels() == ["inner", "outer"]
    assert {r.cell for r in resmagic.history()} == {result.execution_count}


def test_another_extensions_magic_of_the_same_name_is_left_alone(ip: Any) -> None:
    def timed(line: str, cell: str) -> str:
        return f"theirs: {cell.strip()}"

    ours = ip.magics_manager.magics["cell"]["timed"]
    ip.register_magic_function(timed, "cell", "timed")
    try:
        result = ip.run_cell("%%timed\nbody", store_history=True)
    finally:
        ip.magics_manager.magics["cell"]["timed"] = ours
    assert result.result == "theirs: body"
    assert resmagic.history() == []


def test_lsmagic_and_completion_still_know_our_magics(ip: Any) -> None:
    listing = str(ip.run_line_magic("lsmagic", ""))
    assert all(f"%%{name}" in listing for name in ("timed", "gpu_scope", "experiment_log"))
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        matches = [c.text for c in ip.Completer.completions("%%gpu_sc", 8)]
    assert "%%gpu_scope" in matches


@pytest.mark.parametrize("kind", ["locked database", "log that cannot be opened"])
def test_a_scope_refused_as_the_cell_starts_is_one_line_and_no_traceback(
    ip: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    import sqlite3

    from IPython.core.error import UsageError

    db = tmp_path / "locked.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("create table t (x)")
    holder.execute("begin immediate")
    # Both pass the line's checks and fail as the scope opens: the lock is held, and /proc
    # takes no new files.
    header = (
        f"%%db_transaction {db} --timeout 0.2 -q"
        if kind == "locked database"
        else "%%experiment_log /proc/resmagic-test.log -q"
    )
    ip.user_ns.pop("ran_body", None)
    capsys.readouterr()
    try:
        result = ip.run_cell(f"{header}\nran_body = 1", store_history=True)
    finally:
        holder.close()
    shown = capsys.readouterr()
    assert isinstance(result.error_before_exec, UsageError), result
    assert "ran_body" not in ip.user_ns, "the body ran although its scope was refused"
    lines = [line for line in (shown.out + shown.err).splitlines() if line.strip()]
    assert len(lines) == 1, lines  # before: a traceback through resmagic's hooks
    assert lines[0].startswith("UsageError: %%"), lines
