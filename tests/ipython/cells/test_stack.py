"""A magic never changes what the cell means, and magics stack (README, "The magics")."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import resmagic
from resmagic.report import GpuReport, LogReport, TimingReport

pytestmark = pytest.mark.usefixtures("fresh_history")


def _interrupt_after(seconds: float) -> threading.Thread:
    """Send SIGINT to the main thread (so a blocking sleep there wakes up, as Ctrl-C does)."""
    main = threading.main_thread().ident
    assert main is not None

    def fire() -> None:
        time.sleep(seconds)
        signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


class TestValue:
    @pytest.mark.parametrize("magic", ["timed", "gpu_scope --no-panel", "experiment_log {log}"])
    def test_last_expression_becomes_out(self, ip: Any, magic: str, tmp_path: Path) -> None:
        line = magic.format(log=tmp_path / "a.log")
        result = ip.run_cell(f"%%{line}\nx = 21\nx * 2", store_history=True)
        assert result.error_in_exec is None
        assert result.result == 42
        assert ip.user_ns["_"] == 42
        assert ip.user_ns["Out"][result.execution_count] == 42

    def test_trailing_semicolon_silences(self, ip: Any) -> None:
        result = ip.run_cell("%%timed -q\n40 + 2;", store_history=True)
        assert result.error_in_exec is None
        assert result.result is None

    def test_body_without_final_expression_returns_none(self, ip: Any) -> None:
        result = ip.run_cell("%%timed -q\ny = 5", store_history=True)
        assert result.result is None
        assert ip.user_ns["y"] == 5

    def test_print_and_display_reach_the_output(
        self, ip: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ip.run_cell(
            "%%timed -q\nprint('hello from the body')\ndisplay('shown')", store_history=True
        )
        out = capsys.readouterr().out
        assert "hello from the body" in out
        assert "'shown'" in out

    def test_ipython_syntax_in_the_body_still_works(self, ip: Any) -> None:
        result = ip.run_cell("%%timed -q\nfiles = !echo shell-escape\nfiles[0]", store_history=True)
        assert result.result == "shell-escape"

    def test_body_sees_and_sets_user_namespace(self, ip: Any) -> None:
        ip.user_ns["seed"] = 7
        ip.run_cell("%%gpu_scope -q\nresult_from_body = seed * 6", store_history=True)
        assert ip.user_ns["result_from_body"] == 42

    def test_future_import_flags_apply(self, ip: Any) -> None:
        result = ip.run_cell(
            "%%timed -q\nfrom __future__ import annotations\n1", store_history=True
        )
        assert result.error_in_exec is None


class TestErrors:
    def test_exception_propagates_unchanged_and_cell_fails(self, ip: Any) -> None:
        result = ip.run_cell("%%timed -q\nx = 1\nraise KeyError('missing')", store_history=True)
        assert isinstance(result.error_in_exec, KeyError)
        assert result.error_in_exec.args == ("missing",)
        assert sys.last_value is result.error_in_exec  # what %debug and %tb use
        assert resmagic.history()[-1].status == "error"

    def test_traceback_points_at_the_users_line(
        self, ip: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ip.run_cell("%%timed -q\na = 1\n\nb = a / 0\nc = 3", store_history=True)
        out = capsys.readouterr().out
        assert "line 4" in out
        assert "----> 4 b = a / 0" in out
        assert "ZeroDivisionError" in out
        assert "resmagic/ipython/cells/stack.py" not in out  # our frames are hidden

    def test_traceback_line_is_right_under_three_stacked_magics(
        self, ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        log = tmp_path / "s.log"
        cell = f"%%timed -q\n%%gpu_scope -q\n%%experiment_log {log} -q\n\nx = 1\n1 / 0\n"
        ip.run_cell(cell, store_history=True)
        out = capsys.readouterr().out
        assert "----> 6 1 / 0" in out

    def test_syntax_error_fails_before_exec_and_opens_no_scope(self, ip: Any) -> None:
        before = len(resmagic.history())
        result = ip.run_cell("%%gpu_scope -q\nx = (\n", store_history=True)
        plain = ip.run_cell("x = (\n", store_history=True)
        assert isinstance(result.error_before_exec, SyntaxError)
        assert type(result.error_before_exec) is type(plain.error_before_exec)
        assert result.error_in_exec is None
        assert len(resmagic.history()) == before

    def test_every_stacked_scope_reports_error(self, ip: Any, tmp_path: Path) -> None:
        cell = f"%%timed -q\n%%gpu_scope -q\n%%experiment_log {tmp_path / 'e.log'} -q\n1 / 0"
        result = ip.run_cell(cell, store_history=True)
        assert isinstance(result.error_in_exec, ZeroDivisionError)
        reports = resmagic.history()[-3:]
        assert [r.scope for r in reports] == ["gpu_scope", "timed", "experiment_log"]
        assert {r.status for r in reports} == {"error"}
        assert all(r.error == "ZeroDivisionError: division by zero" for r in reports)


class TestInterrupt:
    def test_keyboard_interrupt_propagates_and_reports_interrupted(self, ip: Any) -> None:
        _interrupt_after(0.3)
        with pytest.raises(KeyboardInterrupt):
            ip.run_cell_magic("timed", "-q", "import time\ntime.sleep(20)")
        report = resmagic.history()[-1]
        assert isinstance(report, TimingReport)
        assert report.status == "interrupted"

    def test_interrupt_closes_every_stacked_scope(self, ip: Any, tmp_path: Path) -> None:
        log = tmp_path / "i.log"
        handlers = len(__import__("logging").getLogger("experiment").handlers)
        _interrupt_after(0.3)
        with pytest.raises(KeyboardInterrupt):
            ip.run_cell_magic(
                "timed",
                "-q",
                f"%%gpu_scope -q\n%%experiment_log {log} -q\nimport time\ntime.sleep(20)",
            )
        assert [r.status for r in resmagic.history()[-3:]] == ["interrupted"] * 3
        assert len(__import__("logging").getLogger("experiment").handlers) == handlers
        assert "experiment end: interrupted" in log.read_text()


class TestStacking:
    def test_each_scope_wraps_the_ones_below(self, ip: Any, tmp_path: Path) -> None:
        log = tmp_path / "runs" / "a.log"
        cell = f"%%timed train -q\n%%gpu_scope -q\n%%experiment_log {log} --format jsonl -q\n"
        cell += "logger.info('inside')\n'done'"
        result = ip.run_cell(cell, store_history=True)
        assert result.result == "done"
        gpu, timing, logged = resmagic.history()[-3:]
        assert isinstance(gpu, GpuReport)
        assert isinstance(timing, TimingReport)
        assert isinstance(logged, LogReport)
        assert timing.label == "train"
        # outer opened first and closed last; the log, whatever its line, outermost of all
        assert logged.started_at <= timing.started_at <= gpu.started_at
        assert logged.duration_s >= timing.duration_s >= gpu.duration_s

    def test_log_records_the_stacked_scopes_reports(self, ip: Any, tmp_path: Path) -> None:
        log = tmp_path / "b.log"
        cell = f"%%timed -q\n%%gpu_scope -q\n%%experiment_log {log} --format jsonl -q\n"
        cell += "logger.info('x')"
        ip.run_cell(cell, store_history=True)
        records = [json.loads(line) for line in log.read_text().splitlines()]
        events = [r.get("event") for r in records]
        assert events[0] == "start"
        assert events[-1] == "end"
        scopes = [r["report"]["scope"] for r in records if r.get("event") == "report"]
        assert scopes == ["gpu_scope", "timed"]
        assert "x" in [r["message"] for r in records]

    def test_foreign_magic_stacks_under_ours(
        self, ip: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        result = ip.run_cell("%%timed -q\n%%time\nz = 3\nz + 1", store_history=True)
        assert result.result == 4
        assert "Wall time" in capsys.readouterr().out

    def test_ours_stacks_under_a_foreign_magic(self, ip: Any) -> None:
        result = ip.run_cell("%%time\n%%timed -q\nw = 5\nw * 2", store_history=True)
        assert result.result == 10
        assert resmagic.history()[-1].scope == "timed"

    def test_reports_carry_the_cell_number(self, ip: Any) -> None:
        number = ip.run_cell("%%timed -q\n%%gpu_scope -q\npass", store_history=True).execution_count
        assert [r.cell for r in resmagic.history()[-2:]] == [number, number]


class TestBindings:
    def test_logger_is_bound_for_the_cell_then_restored(self, ip: Any, tmp_path: Path) -> None:
        ip.user_ns["logger"] = "mine"
        log = tmp_path / "c.log"
        ip.run_cell(
            f"%%experiment_log {log} -q\nseen = logger.name\nlogger.info('ok')", store_history=True
        )
        assert ip.user_ns["seen"] == "experiment"
        assert ip.user_ns["logger"] == "mine"
        assert "ok" in log.read_text()

    def test_as_names_the_binding_and_leaves_no_name_behind(self, ip: Any, tmp_path: Path) -> None:
        ip.user_ns.pop("cur", None)
        db = tmp_path / "d.db"
        result = ip.run_cell(
            f"%%db_transaction {db} --as cur -q\ncur.execute('create table t (x)')\n"
            "cur.execute('insert into t values (1)')\ncur.rowcount",
            store_history=True,
        )
        assert result.result == 1
        assert "cur" not in ip.user_ns
        import sqlite3

        with sqlite3.connect(db) as check:
            assert check.execute("select count(*) from t").fetchone() == (1,)

    def test_db_transaction_rolls_back_when_the_cell_fails(self, ip: Any, tmp_path: Path) -> None:
        import sqlite3

        db = tmp_path / "r.db"
        sqlite3.connect(db).execute("create table t (x)").connection.close()
        ip.run_cell(
            f"%%db_transaction {db} -q\ncursor.execute('insert into t values (1)')\n1 / 0",
            store_history=True,
        )
        with sqlite3.connect(db) as check:
            assert check.execute("select count(*) from t").fetchone() == (0,)


class TestTopLevelAwait:
    def test_await_in_the_body_works_and_keeps_the_value(self, ip: Any) -> None:
        cell = "%%timed -q\nimport asyncio\nv = await asyncio.sleep(0, result=21)\nv * 2"
        result = ip.run_cell(cell, store_history=True)
        assert result.error_in_exec is None
        assert result.result == 42
        assert resmagic.history()[-1].status == "ok"

    def test_await_under_stacked_magics(self, ip: Any, tmp_path: Path) -> None:
        cell = (
            f"%%timed -q\n%%gpu_scope -q\n%%experiment_log {tmp_path / 'aw.log'} -q\n"
            "import asyncio\nawait asyncio.sleep(0)\nlogger.info('awaited')\n'ok'"
        )
        assert ip.run_cell(cell, store_history=True).result == "ok"
        assert [r.scope for r in resmagic.history()] == ["gpu_scope", "timed", "experiment_log"]
        assert "awaited" in (tmp_path / "aw.log").read_text()

    def test_awaited_error_points_at_the_users_line(
        self, ip: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        cell = "%%timed -q\nimport asyncio\nawait asyncio.sleep(0)\n1 / 0"
        result = ip.run_cell(cell, store_history=True)
        assert isinstance(result.error_in_exec, ZeroDivisionError)
        assert "----> 4 1 / 0" in capsys.readouterr().out
        assert resmagic.history()[-1].status == "error"

    def test_semicolon_silences_an_awaited_cell(self, ip: Any) -> None:
        cell = "%%timed -q\nimport asyncio\nawait asyncio.sleep(0, result=1);"
        assert ip.run_cell(cell, store_history=True).result is None

    def test_async_for_and_with(self, ip: Any) -> None:
        cell = (
            "%%timed -q\nimport contextlib\n"
            "async def gen():\n    yield 1\n    yield 2\n"
            "@contextlib.asynccontextmanager\nasync def cm():\n    yield 10\n"
            "async with cm() as base:\n    total = base + sum([x async for x in gen()])\ntotal"
        )
        assert ip.run_cell(cell, store_history=True).result == 13

    def test_word_await_in_a_string_takes_the_plain_path(self, ip: Any) -> None:
        result = ip.run_cell("%%timed -q\n'await me'", store_history=True)
        assert result.result == "await me"

    def test_autoawait_off_behaves_like_a_plain_cell(self, ip: Any) -> None:
        ip.run_line_magic("autoawait", "off")
        try:
            result = ip.run_cell(
                "%%timed -q\nimport asyncio\nawait asyncio.sleep(0)", store_history=True
            )
            plain = ip.run_cell("import asyncio\nawait asyncio.sleep(0)", store_history=True)
        finally:
            ip.run_line_magic("autoawait", "on")
        assert isinstance(plain.error_before_exec, SyntaxError)
        assert isinstance(result.error_before_exec, SyntaxError)
