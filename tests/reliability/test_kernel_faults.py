"""Faults only a real kernel has: SIGKILL mid-log, interrupts, the notebook's working directory."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.kernel import Kernel

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
