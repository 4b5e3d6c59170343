"""The sink thread: one thread, a bounded queue, failures said once, nothing lost at close."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from resmagic import bus
from resmagic.report import TimingReport
from resmagic.sinks.thread import SinkState, SinkThread
from tests.reports import ranks_report, timing_report
from tests.sinks.sinks import Blocking, Failing, Recording

pytestmark = pytest.mark.usefixtures("fresh_history")


@pytest.fixture
def runner() -> Iterator[SinkThread]:
    runner = SinkThread(capacity=3)
    yield runner
    runner.close(timeout=30)


def _labels(sink: Recording) -> list[str | None]:
    return [r.label for r in sink.got if isinstance(r, TimingReport)]


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


def test_close_gives_up_on_a_hung_sink_after_the_timeout_and_says_so(
    runner: SinkThread, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = Blocking()
    runner.add(sink)
    bus.publish(timing_report())
    assert sink.entered.wait(30)
    assert runner.remove("blocking", timeout=0.05) is False
    assert "resmagic: blocking: gave up after 0.05 s" in capsys.readouterr().err
    sink.release.set()
    assert runner.flush(30)
    assert sink.closed  # the close stayed queued behind the report and ran once it could


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


def _run_script(out: Path, body: str) -> list[str]:
    """Run ``body`` in a fresh interpreter where ``File(who)`` is a sink that writes each
    report's ``who label`` line to ``out`` (slowly: still busy when a script ends) and
    ``who closed`` when closed; return the lines."""
    head = f"""
        import os, time
        import resmagic
        from resmagic.sinks.thread import sink_thread as runner

        class File:
            name = "file"
            def __init__(self, who):
                self.who = who
            def send(self, reports):
                time.sleep(0.05)
                self._write(*(r.label for r in reports))
            def close(self):
                self._write("closed")
            def describe(self):
                return ""
            def _write(self, *words):
                with open({str(out)!r}, "a") as f:
                    f.writelines(f"{{self.who}} {{word}}\\n" for word in words)
        """
    script = textwrap.dedent(head) + textwrap.dedent(body)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    return out.read_text().splitlines()


def test_interpreter_exit_sends_what_is_queued(tmp_path: Path) -> None:
    body = """
        runner.add(File("me"))
        for label in ("a", "b", "c"):
            with resmagic.timed(label):
                pass
        """
    assert _run_script(tmp_path / "sent.txt", body) == ["me a", "me b", "me c", "me closed"]


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
