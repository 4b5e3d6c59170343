"""Exceptions at every point, out of memory, and databases: every scope closes, nothing is lost."""

from __future__ import annotations

import gc
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

import resmagic
from resmagic.probes import host
from resmagic.report import GpuReport, LogReport
from tests.fulldisk import PAGE, fill, small_tmpfs
from tests.ipython.cells.test_stack import _interrupt_after

pytestmark = pytest.mark.usefixtures("fresh_history")


def _handlers(name: str = "experiment") -> int:
    return len(logging.getLogger(name).handlers)


class TestExceptionsAtEveryPoint:
    def test_error_in_the_body_closes_every_scope(self, ip: Any, tmp_path: Path) -> None:
        db = tmp_path / "a.db"
        cell = (
            f"%%timed -q\n%%gpu_scope -q\n%%experiment_log {tmp_path / 'a.log'} -q\n"
            f"%%db_transaction {db} -q\ncursor.execute('create table t (x)')\n1 / 0"
        )
        assert isinstance(ip.run_cell(cell, store_history=True).error_in_exec, ZeroDivisionError)
        reports = resmagic.history()
        assert sorted(r.scope for r in reports) == [
            "db_transaction",
            "experiment_log",
            "gpu_scope",
            "timed",
        ]
        assert {r.status for r in reports} == {"error"}
        assert _handlers() == 0
        with sqlite3.connect(db) as check:  # rolled back: the table was never created
            assert check.execute("select name from sqlite_master").fetchall() == []

    def test_body_that_closes_the_logs_handler_itself(self, ip: Any, tmp_path: Path) -> None:
        log = tmp_path / "closed.log"
        cell = (
            f"%%timed -q\n%%experiment_log {log} -q\n"
            "logger.info('before close')\nlogger.handlers[0].close()\nraise RuntimeError('after')"
        )
        result = ip.run_cell(cell, store_history=True)
        assert isinstance(result.error_in_exec, RuntimeError)
        assert [r.status for r in resmagic.history()] == ["error", "error"]
        assert _handlers() == 0
        text = log.read_text()
        assert "before close" in text
        assert "experiment end: error" in text

    def test_body_that_removes_the_handler_itself(self, ip: Any, tmp_path: Path) -> None:
        log = tmp_path / "removed.log"
        cell = f"%%experiment_log {log} -q\nlogger.removeHandler(logger.handlers[0])\n1 / 0"
        ip.run_cell(cell, store_history=True)
        assert resmagic.history()[-1].status == "error"
        assert _handlers() == 0

    def test_inner_stacked_magic_refused_after_outer_entered(self, ip: Any, tmp_path: Path) -> None:
        other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        other.execute("begin immediate")  # another connection holds the write lock
        try:
            with pytest.raises(UsageError, match="locked"):
                ip.run_cell_magic(
                    "timed",
                    "-q",
                    f"%%gpu_scope -q\n%%db_transaction {tmp_path / 'locked.db'} --timeout 0.2 -q\n"
                    "ran_body = True",
                )
        finally:
            other.close()
        assert "ran_body" not in ip.user_ns
        assert [r.status for r in resmagic.history()] == ["error", "error"]

    def test_error_inside_inner_magic_of_a_stack(self, ip: Any, tmp_path: Path) -> None:
        log = tmp_path / "inner.log"
        cell = f"%%gpu_scope -q\n%%experiment_log {log} --format jsonl -q\nraise OSError('disk')"
        result = ip.run_cell(cell, store_history=True)
        assert isinstance(result.error_in_exec, OSError)
        assert {r.status for r in resmagic.history()} == {"error"}
        assert '"event": "exception"' in log.read_text()

    @pytest.mark.filterwarnings("ignore:To exit:UserWarning")
    def test_system_exit_in_the_body_still_closes(self, ip: Any, tmp_path: Path) -> None:
        log = tmp_path / "exit.log"
        ip.run_cell(f"%%experiment_log {log} -q\nraise SystemExit(3)", store_history=True)
        assert resmagic.history()[-1].status == "error"
        assert _handlers() == 0


class TestOutOfMemory:
    BODY = (
        "def fill():\n"
        "    held = bytearray(b'x') * (500 << 20)\n"
        "    raise MemoryError('out of memory')\n"
        "fill()"
    )

    def _held_after(self, ip: Any, cell: str) -> int:
        ip.run_cell("1", store_history=True)  # drop any traceback IPython still holds
        gc.collect()
        base = host.rss_bytes()
        result = ip.run_cell(cell, store_history=True)
        assert isinstance(result.error_in_exec, MemoryError)
        gc.collect()
        held = host.rss_bytes() - base
        ip.run_cell("1", store_history=True)
        return held

    def test_reclaim_returns_memory_that_a_plain_cell_keeps(self, ip: Any) -> None:
        plain = self._held_after(ip, self.BODY)
        reclaimed = self._held_after(ip, "%%gpu_scope --reclaim oom -q\n" + self.BODY)
        assert plain > 450 << 20, f"plain cell held only {plain >> 20} MiB"
        assert reclaimed < 50 << 20, f"after reclaim {reclaimed >> 20} MiB still held"
        report = resmagic.history()[-1]
        assert isinstance(report, GpuReport)
        assert report.reclaimed
        assert report.device("host").peak_bytes - report.device("host").before_bytes > 450 << 20

    @pytest.mark.parametrize("xmode", ["context", "verbose", "plain"])
    def test_reclaim_frees_frames_whose_locals_the_traceback_read(self, xmode: str) -> None:
        # In a fresh shell, so no earlier test's frames are held: formatting the traceback
        # reads each frame's f_locals, a snapshot that frame.clear() leaves alive on < 3.13.
        code = (
            "import gc, sys\n"
            "from IPython.testing.globalipapp import start_ipython\n"
            "from resmagic.probes import host\n"
            "ip = start_ipython()\n"
            "ip.run_line_magic('load_ext', 'resmagic')\n"
            f"ip.run_line_magic('xmode', {xmode!r})\n"
            # An argument: the traceback shows step(n), which reads the frame's f_locals.
            'ip.run_cell(\'def step(n):\\n    held = bytearray(b"x") * n\\n'
            '    raise MemoryError("out of memory")\', store_history=True)\n'
            "ip.run_cell('1', store_history=True)\n"
            "gc.collect(); base = host.rss_bytes()\n"
            "ip.run_cell('%%gpu_scope -q\\nstep(500 << 20)', store_history=True)\n"
            "gc.collect()\n"
            "print((host.rss_bytes() - base) >> 20, file=sys.__stderr__)\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        held = int(done.stderr.strip().splitlines()[-1])
        assert held < 50, f"{held} MiB still held after the reclaim ({xmode})"

    def test_reclaim_never_keeps_frames_for_debugging(self, ip: Any) -> None:
        kept = self._held_after(ip, "%%gpu_scope --reclaim never -q\n" + self.BODY)
        assert kept > 450 << 20


class TestDatabase:
    def test_interrupt_mid_transaction_leaves_no_rows(self, ip: Any, tmp_path: Path) -> None:
        db = tmp_path / "i.db"
        with sqlite3.connect(db) as setup:
            setup.execute("create table t (x)")
        _interrupt_after(0.3)
        with pytest.raises(KeyboardInterrupt):
            ip.run_cell_magic(
                "db_transaction",
                f"{db} -q",
                "cursor.executemany('insert into t values (?)', [(i,) for i in range(100)])\n"
                "import time\ntime.sleep(20)",
            )
        with sqlite3.connect(db) as check:
            assert check.execute("select count(*) from t").fetchone() == (0,)
        assert resmagic.history()[-1].status == "interrupted"

    def test_locked_database_fails_fast_with_a_clear_error(self, ip: Any, tmp_path: Path) -> None:
        db = tmp_path / "l.db"
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("begin immediate")
        try:
            start = time.monotonic()
            with pytest.raises(UsageError, match="locked by another connection"):
                ip.run_cell_magic("db_transaction", f"{db} --timeout 0.2 -q", "ran_body = True")
            waited = time.monotonic() - start
        finally:
            holder.close()
        assert waited < 10  # bounded by --timeout, not a hang (generous on a busy machine)
        assert "ran_body" not in ip.user_ns


class TestThreads:
    def test_eight_threads_log_eight_thousand_whole_records(self, ip: Any, tmp_path: Path) -> None:
        import json

        log = tmp_path / "threads.log"
        body = (
            "import threading\n"
            "def work(t):\n"
            "    for i in range(1000):\n"
            "        logger.info('record', extra={'worker': t, 'i': i, 'pad': 'x' * 200})\n"
            "threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]\n"
            "for th in threads: th.start()\n"
            "for th in threads: th.join()\n"
        )
        ip.run_cell(f"%%experiment_log {log} --format jsonl -q\n{body}", store_history=True)
        records = [json.loads(line) for line in log.read_text().splitlines()]
        got = {(r["worker"], r["i"]) for r in records if r.get("message") == "record"}
        assert len(got) == 8000
        report = resmagic.history()[-1]
        assert isinstance(report, LogReport)
        assert report.records == 8002  # + start and end
        assert threading.active_count() == 1 + sum(
            t.daemon for t in threading.enumerate() if t is not threading.main_thread()
        )


class TestFullDisk:
    """Reliability 2026-12-06 #5 in a shell: the cell keeps its outcome, the note is said once."""

    BODY = "for i in range(500):\n    logger.info('record %d padding padding padding', i)"

    @pytest.mark.parametrize("quiet", ["", " -q"])
    def test_a_cell_logging_to_a_full_disk_succeeds_and_says_what_was_lost_once(
        self, ip: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], quiet: str
    ) -> None:
        with small_tmpfs(tmp_path / "disk") as disk:
            fill(disk, leave=PAGE)
            capfd.readouterr()
            log = disk / "run.log"
            result = ip.run_cell(
                f"%%experiment_log {log} --format jsonl{quiet}\n{self.BODY}", store_history=True
            )
        out, err = capfd.readouterr()
        assert result.success, result.error_in_exec  # OSError at the block's exit before
        report = resmagic.history()[-1]
        assert isinstance(report, LogReport)
        assert (report.status, report.records + report.lost) == ("ok", 502)
        note = f"{report.lost} of 502 records not written: [Errno 28] No space left on device"
        assert (out + err).count(note) == 1
        assert "Logging error" not in out + err
        assert _handlers() == 0
