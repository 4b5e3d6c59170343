"""Faults only a real kernel has: SIGKILL mid-log, interrupts, the notebook's working directory."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.kernel import Execution, Kernel

pytestmark = pytest.mark.kernel


def test_killed_kernel_keeps_every_record_written_before_the_kill(tmp_path: Path) -> None:
    log = tmp_path / "killed.log"
    # Lines of 3,000 B: most would cross a page, where Linux may cut a write at a SIGKILL
    # (reliability 2026-12-06 #10); tests/reliability/test_killed_writers.py kills 150 times.
    body = (
        "import threading, time\n"
        "def work(t):\n"
        "    i = 0\n"
        "    while True:\n"
        "        logger.info('tick', extra={'worker': t, 'i': i, 'pad': 'y' * 3000})\n"
        "        i += 1\n"
        "for t in range(2):\n"
        "    threading.Thread(target=work, args=(t,), daemon=True).start()\n"
        "time.sleep(60)\n"
    )
    kernel = Kernel(cwd=str(tmp_path))
    try:
        kernel.run("%load_ext resmagic")
        kernel.start(f"%%experiment_log {log} --format jsonl\n{body}")
        deadline = time.monotonic() + 30
        while (not log.exists() or log.stat().st_size < 6_000_000) and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = kernel.km.provisioner.process.pid  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    finally:
        kernel.close()
    lines = log.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line whole: each parses
    ticks = [r for r in records if r.get("message") == "tick"]
    assert len(ticks) > 1000
    for worker in (0, 1):
        seen = sorted(r["i"] for r in ticks if r["worker"] == worker)
        assert seen == list(range(len(seen))), f"worker {worker} lost a record before the kill"


def test_relative_and_home_paths_resolve_like_the_notebook(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    with Kernel(cwd=str(tmp_path), env=env) as kernel:
        kernel.run("%load_ext resmagic")
        assert kernel.run("%%experiment_log runs/rel.log -q\nlogger.info('r')").status == "ok"
        assert kernel.run("%%experiment_log ~/h.log -q\nlogger.info('h')").status == "ok"
        assert (
            kernel.run("%%db_transaction data.db -q\ncursor.execute('create table t(x)')").status
            == "ok"
        )
    assert "r" in (tmp_path / "runs" / "rel.log").read_text()
    assert "h" in (home / "h.log").read_text()
    assert (tmp_path / "data.db").exists()


def test_interrupted_stacked_cell_leaves_no_thread_or_handler(tmp_path: Path) -> None:
    log = tmp_path / "int.log"
    with Kernel(cwd=str(tmp_path)) as kernel:
        kernel.run("%load_ext resmagic")
        # No idle linger: the sampler's thread, if the cell used one, must be gone at once.
        kernel.run("import resmagic; resmagic.settings.sampler_linger = 0")
        # The run store's writer thread starts with the first measured cell, not at
        # %load_ext (issue 26): it is the session's, and counted before the cell under test.
        assert kernel.run("%%timed -q\npass").status == "ok"
        threads = kernel.value("__import__('threading').active_count()")
        msg_id = kernel.start(
            f"%%timed\n%%gpu_scope --no-panel\n%%experiment_log {log}\nimport time\ntime.sleep(30)"
        )
        deadline = time.monotonic() + 20
        while not log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        kernel.km.interrupt_kernel()
        run = kernel.collect(msg_id, timeout=30)
        assert run.error is not None
        assert run.error["ename"] == "KeyboardInterrupt"
        assert kernel.value("__import__('threading').active_count()") == threads
        assert kernel.value("len(__import__('logging').getLogger('experiment').handlers)") == 0
        ends = [line for line in log.read_text().splitlines() if "experiment end" in line]
        assert len(ends) == 1
        assert "interrupted" in ends[0]
        assert kernel.run("%%timed -q\n1 + 1").status == "ok"


def _store_env(profile: Path) -> dict[str, str]:
    return {**os.environ, "IPYTHONDIR": str(profile), "JPY_SESSION_NAME": "work/kill.ipynb"}


def _said(run: Execution) -> str:
    return "".join(m["content"]["text"] for m in run.of_type("stream"))


def _statuses(profile: Path) -> list[tuple[str | None, str]]:
    conn = sqlite3.connect(profile / "profile_default" / "resmagic.sqlite")
    try:
        return conn.execute("SELECT cell_id, status FROM reports ORDER BY id").fetchall()
    finally:
        conn.close()


def test_a_kernel_killed_just_after_a_cells_reply_is_not_said_to_have_died_in_it(
    tmp_path: Path,
) -> None:
    # reliability 2026-12-06 #4: the cell's running row outlived it by the store's gather
    # window, and the next kernel named the finished cell (58 of 105 kills).
    profile = tmp_path / "ipython"
    for attempt in range(2):
        kernel = Kernel(env=_store_env(profile))
        try:
            loaded = kernel.run("%load_ext resmagic")
            assert "died" not in _said(loaded)
            # Long enough that the running row is committed while the cell runs.
            done = kernel.run("%%timed\nimport time\ntime.sleep(0.5)", cell_id=f"ran-{attempt}")
            assert done.status == "ok"
            os.kill(kernel.pid, signal.SIGKILL)  # the reply is in: the cell had ended
        finally:
            kernel.close()
    with Kernel(env=_store_env(profile)) as last:
        loaded = last.run("%load_ext resmagic")
        assert "died" not in _said(loaded)
        assert last.run("%unload_ext resmagic").status == "ok"
    statuses = _statuses(profile)
    assert [s for s in statuses if s[1] in ("died", "running")] == []


def test_a_kernel_killed_as_a_cell_starts_is_named_by_the_next_one(tmp_path: Path) -> None:
    # reliability 2026-12-06 #4: a cell killed before the writer's first batch left no trace.
    profile, started = tmp_path / "ipython", tmp_path / "started"
    kernel = Kernel(env=_store_env(profile))
    try:
        kernel.run("%load_ext resmagic")
        kernel.run("%%timed\n1", cell_id="warm")
        kernel.start(
            f"%%gpu_scope --no-panel\nimport time\nopen({str(started)!r}, 'w').close()\n"
            "time.sleep(60)",
            cell_id="doomed",
        )
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline, "the cell never started"
            time.sleep(0.005)
        os.kill(kernel.pid, signal.SIGKILL)
    finally:
        kernel.close()
    with Kernel(env=_store_env(profile)) as second:
        loaded = second.run("%load_ext resmagic")
        assert loaded.stdout.startswith("resmagic: the previous kernel died during cell 3 (")
        assert second.run("%unload_ext resmagic").status == "ok"
    assert ("doomed", "died") in _statuses(profile)
