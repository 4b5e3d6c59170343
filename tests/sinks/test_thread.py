"""The sink thread: one thread, a bounded queue, failures said once, nothing lost at close."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from resmagic import bus
from resmagic.report import TimingReport
from resmagic.sinks.thread import SinkState, SinkThread
from tests.reports import ranks_report, timing_report
from tests.sinks.sinks import Blocking, Failing, Partial, Recording

pytestmark = pytest.mark.usefixtures("fresh_history")


@pytest.fixture
def runner() -> Iterator[SinkThread]:
    runner = SinkThread(capacity=3)
    yield runner
    runner.close(timeout=30)


def _labels(sink: Recording) -> list[str | None]:
    return [r.label for r in sink.got if isinstance(r, TimingReport)]


def _stuck_sending(runner: SinkThread) -> Blocking:
    """A sink added to ``runner`` whose thread is now stuck sending it the report "held"."""
    sink = Blocking()
    runner.add(sink)
    bus.publish(timing_report(label="held"))
    assert sink.entered.wait(30)
    return sink


def test_reports_reach_the_sink_in_order_on_its_own_thread(runner: SinkThread) -> None:
    sink = Recording()
    runner.add(sink)
    for i in range(3):
        bus.publish(timing_report(label=str(i)))
    assert runner.flush(30)
    assert _labels(sink) == ["0", "1", "2"]
    assert sink.threads == {"resmagic-sinks"}
    (state,) = runner.states()
    assert (state.sent, state.queued, state.dropped, state.failures) == (3, 0, 0, 0)


def test_a_full_queue_drops_and_counts_without_blocking_the_publisher(
    runner: SinkThread, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = Blocking()
    runner.add(sink)
    bus.publish(timing_report(label="held"))
    assert sink.entered.wait(30)  # the thread is stuck in send with the first report
    for i in range(7):  # 3 fill the queue, 4 are dropped; none of these calls waits
        bus.publish(timing_report(label=str(i)))
    (state,) = runner.states()
    assert (state.queued, state.dropped, state.sent) == (4, 4, 0)  # 1 in flight, 3 waiting
    assert capsys.readouterr().err.count("the sink queue is full (3 reports)") == 1
    sink.release.set()
    assert runner.flush(30)
    assert _labels(sink) == ["held", "0", "1", "2"]
    assert sink.batches == [1, 3]  # what waited went in one send
    assert runner.states()[0].sent == 4


def test_a_failing_sink_is_said_once_counted_and_the_others_still_get_reports(
    runner: SinkThread, capsys: pytest.CaptureFixture[str]
) -> None:
    failing, recording = Failing(), Recording()
    runner.add(failing)
    runner.add(recording)
    for i in range(3):
        bus.publish(timing_report(label=str(i)))
        assert runner.flush(30)
    err = capsys.readouterr().err
    assert err.count("resmagic: the failing sink failed: ConnectionError: tracker unreachable") == 1
    bad, good = runner.states()
    assert (bad.sent, bad.failures) == (0, 3)
    assert bad.last_error == "ConnectionError: tracker unreachable"
    assert "3 failures" in bad.summary()
    assert "last: ConnectionError: tracker unreachable" in bad.summary()
    assert (good.sent, good.failures) == (3, 0)
    assert _labels(recording) == ["0", "1", "2"]


def test_flush_returns_false_while_a_sink_hangs(runner: SinkThread) -> None:
    sink = Blocking()
    runner.add(sink)
    bus.publish(timing_report())
    assert sink.entered.wait(30)
    assert runner.flush(0.05) is False
    sink.release.set()
    assert runner.flush(30) is True


def test_close_sends_what_is_queued_closes_the_sink_and_stops_listening(
    runner: SinkThread,
) -> None:
    sink = Recording()
    runner.add(sink)
    for i in range(3):
        bus.publish(timing_report(label=str(i)))
    thread = runner._thread
    assert thread is not None
    assert runner.close(30)
    assert sink.closed
    assert _labels(sink) == ["0", "1", "2"]
    assert not thread.is_alive()
    assert runner.names() == []
    bus.publish(timing_report(label="after"))
    assert _labels(sink) == ["0", "1", "2"]
    assert runner.offer not in bus._subscribers


def test_a_close_that_gives_up_lets_the_sink_go_and_a_new_one_starts(
    runner: SinkThread, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = _stuck_sending(runner)
    bus.publish(timing_report(label="queued"))
    assert runner.remove("blocking", timeout=0.05) is False
    err = capsys.readouterr().err
    assert (
        "resmagic: blocking: stopped waiting for its tracker (0.05 s); blocking is off, "
        "1 queued report not sent" in err
    ), err
    assert runner.names() == []  # sink=off reads off, and sink=... again makes a new one
    after = Recording()
    runner.add(after)
    bus.publish(timing_report(label="new"))
    sink.release.set()
    assert runner.flush(30)
    assert sink.closed  # the close stayed queued behind the report and ran once it could
    assert _labels(sink) == ["held"]
    assert _labels(after) == ["new"]


def test_a_let_go_sinks_close_ends_the_thread_and_its_listening_by_itself(
    runner: SinkThread,
) -> None:
    sink = _stuck_sending(runner)
    assert runner.remove("blocking", timeout=0.05) is False
    thread = runner._started
    assert thread is not None
    assert runner.states() == []  # nothing of the let-go sink's counts on another line
    sink.release.set()
    thread.join(30)
    assert not thread.is_alive()
    assert sink.closed
    assert runner.offer not in bus._subscribers


def test_a_new_sinks_counts_leave_out_the_let_go_sinks_report_in_flight(
    runner: SinkThread,
) -> None:
    sink = _stuck_sending(runner)
    assert runner.remove("blocking", timeout=0.05) is False
    runner.add(Recording())
    (state,) = runner.states()
    assert (state.name, state.queued) == ("recording", 0)  # "held" is the old sink's
    sink.release.set()


def test_close_waits_for_a_let_go_sinks_close_then_stops_the_thread(runner: SinkThread) -> None:
    """Unload and exit: the old run must still end, as the let-go line says it will."""
    sink = _stuck_sending(runner)
    assert runner.remove("blocking", timeout=0.05) is False

    def release_once_waiting() -> None:
        while not runner._hurry:  # close() waits for the let-go sink's close
            time.sleep(0.001)
        sink.release.set()

    threading.Thread(target=release_once_waiting, daemon=True).start()
    assert runner.close(30) is True
    assert sink.closed
    assert runner._started is not None
    assert not runner._started.is_alive()


def test_ctrl_c_while_a_close_waits_lets_the_sink_go(
    runner: SinkThread, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = _stuck_sending(runner)

    def interrupt_once_waiting() -> None:
        while not runner._hurry:  # remove's flush has started waiting
            time.sleep(0.001)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    threading.Thread(target=interrupt_once_waiting, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        runner.remove("blocking", timeout=60)
    assert "blocking: stopped waiting for its tracker (interrupted)" in capsys.readouterr().err
    assert runner.names() == []
    sink.release.set()
    assert runner.flush(30)
    assert sink.closed


def test_a_send_that_delivers_part_counts_only_the_rest_as_failures(
    runner: SinkThread, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = Partial()
    runner.add(sink)
    for i in range(3):
        bus.publish(timing_report(label=str(i)))
    assert runner.flush(30)
    (state,) = runner.states()
    assert (state.sent + state.failures, state.failures) == (3, sink.refused)
    assert state.last_error == "OSError: log file gone"
    assert capsys.readouterr().err.count("the partial sink failed: OSError: log file gone") == 1


def test_a_sink_added_after_close_gets_a_new_thread(runner: SinkThread) -> None:
    first, second = Recording(), Recording()
    runner.add(first)
    runner.close(30)
    runner.add(second)
    bus.publish(timing_report(label="again"))
    assert runner.flush(30)
    assert (_labels(first), _labels(second)) == ([], ["again"])


def test_summary_reads_as_one_status_line() -> None:
    state = SinkState("mlflow", "run 3f2a at http://x", 1, 12, 0, 1, "ConnectionError: down")
    assert state.summary() == (
        "mlflow: 12 sent, 1 queued, 0 dropped, 1 failure (run 3f2a at http://x)"
        "; last: ConnectionError: down"
    )


def _script(out: Path, body: str, wait: str = "time.sleep(0.05)") -> str:
    """``body`` after a head where ``File(who)`` is a sink that writes each report's ``who
    label`` line to ``out`` (after ``wait``: still busy when a script ends) and ``who
    closed`` when closed."""
    head = f"""
        import os, time
        import resmagic
        from resmagic.sinks import thread
        from resmagic.sinks.thread import sink_thread as runner

        class File:
            name = "file"
            def __init__(self, who):
                self.who = who
            def send(self, reports):
                {wait}
                self._write(*(r.label for r in reports))
            def close(self):
                self._write("closed")
            def describe(self):
                return ""
            def _write(self, *words):
                with open({str(out)!r}, "a") as f:
                    f.writelines(f"{{self.who}} {{word}}\\n" for word in words)
        """
    return textwrap.dedent(head) + textwrap.dedent(body)


def _run_script(out: Path, body: str) -> list[str]:
    """Run :func:`_script` in a fresh interpreter; return the lines its sinks wrote."""
    subprocess.run([sys.executable, "-c", _script(out, body)], check=True, timeout=120)
    return out.read_text().splitlines()


def test_interpreter_exit_sends_what_is_queued(tmp_path: Path) -> None:
    body = """
        runner.add(File("me"))
        for label in ("a", "b", "c"):
            with resmagic.timed(label):
                pass
        """
    assert _run_script(tmp_path / "sent.txt", body) == ["me a", "me b", "me c", "me closed"]


def _catches_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        caught = next(line for line in status if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


def test_a_sigterm_during_the_exit_close_waits_for_it_then_ends_the_process(
    tmp_path: Path,
) -> None:
    """Jupyter's shutdown: SIGTERM 2.5 s in. Python's default would end the close mid-send."""
    out, entered, go = tmp_path / "sent.txt", tmp_path / "entered", tmp_path / "go"
    until_go = f"iter(lambda: os.path.exists({str(go)!r}), True)"
    wait = f"open({str(entered)!r}, 'w').close(); [time.sleep(0.01) for _ in {until_go}]"
    body = """
        thread.TERM_GRACE_S = 120  # this test's machine may be slow: no clock decides here
        runner.add(File("me"))
        with resmagic.timed("last"):
            pass
        """
    script = _script(out, body, wait=wait)
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        # The exit's close holds SIGTERM only once the program is done: wait for both.
        while not (entered.exists() and _catches_sigterm(process.pid)):
            assert process.poll() is None, "the script ended before its close waited"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        go.touch()
        assert process.wait(120) == -signal.SIGTERM  # delivered once the close was done
    finally:
        process.kill()
    assert out.read_text().splitlines() == ["me last", "me closed"]


def test_a_forked_child_starts_with_no_sinks_and_can_add_its_own(tmp_path: Path) -> None:
    body = """
        runner.add(File("parent"))
        pid = os.fork()
        if pid == 0:  # the child: nothing of its own yet, then a sink of its own
            with resmagic.timed("before"):
                pass
            runner.add(File("child"))
            with resmagic.timed("after"):
                pass
            raise SystemExit(0)  # a normal exit: the exit hook flushes the child's sink
        assert os.waitpid(pid, 0)[1] == 0
        with resmagic.timed("parent"):
            pass
        """
    lines = _run_script(tmp_path / "sent.txt", body)
    assert sorted(lines) == ["child after", "child closed", "parent closed", "parent parent"]


def test_a_ranks_report_reaches_the_sinks_from_rank_0_only(runner: SinkThread) -> None:
    sink = Recording()
    runner.add(sink)
    bus.publish(ranks_report(1))  # rank 0's report carries rank 1's row
    bus.publish(ranks_report(0))
    assert runner.flush(30)
    assert [r.ranks.rank for r in sink.got] == [0]  # type: ignore[attr-defined]
