"""experiment_log: a file per experiment, every record flushed, the handler always removed."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import sys
import threading
from itertools import count
from pathlib import Path
from typing import Any

import pytest

import resmagic
from resmagic import experiment_log, timed
from resmagic.errors import OptionError, PathError
from resmagic.report import LogReport
from tests.fulldisk import PAGE, fill, small_tmpfs

pytestmark = pytest.mark.usefixtures("fresh_history")

_names = count()
TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +"
    r"(?P<name>\S+) \[(?P<run>\d{8}-\d{6}-[0-9a-f]{6})\] (?P<message>.*)$"
)

ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture
def name() -> str:
    """A logger of the test's own, so handler counts are not shared between tests."""
    return f"resmagic-test-{next(_names)}"


def _report(scope: experiment_log) -> LogReport:
    assert scope.report is not None
    return scope.report


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _events(path: Path) -> list[str | None]:
    return [r.get("event") for r in _jsonl(path)]


class TestFile:
    def test_file_created_with_parent_folders(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "runs" / "2024" / "exp1" / "run.log"
        with experiment_log(path, name=name) as log:
            log.info("lr=%g", 3e-4)
        lines = path.read_text().splitlines()
        assert len(lines) == 3
        assert "experiment start: run " in lines[0]
        assert lines[1].endswith(" lr=0.0003")
        assert "experiment end: ok after " in lines[2]

    def test_home_in_the_path_is_expanded(
        self, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HOME", str(tmp_path))
        scope = experiment_log("~/logs/run.log", name=name)
        with scope as log:
            log.info("here")
        assert "here" in (tmp_path / "logs" / "run.log").read_text()
        assert _report(scope).path == "~/logs/run.log"  # as the user wrote it

    def test_each_record_is_flushed_as_written(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.log"
        with experiment_log(path, name=name) as log:
            log.info("checkpoint 1")
            assert path.read_text().splitlines()[-1].endswith(" checkpoint 1")

    def test_mode_a_appends_and_mode_w_starts_afresh(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.jsonl"
        for _ in range(2):
            with experiment_log(path, name=name, fmt="jsonl", mode="a"):
                pass
        assert _events(path) == ["start", "end", "start", "end"]
        with experiment_log(path, name=name, fmt="jsonl", mode="w"):
            pass
        assert _events(path) == ["start", "end"]


class TestFormats:
    def test_start_record_names_the_program_and_none_of_its_arguments(
        self, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Reliability 2026-12-06 #11: argv[:3] in a kernel is "-f" and the path of the
        # kernel's connection file; a script's arguments may carry an API key.
        launcher = "/venv/lib/python3/site-packages/ipykernel_launcher.py"
        connection = str(tmp_path / "runtime" / "kernel-0b1c.json")
        monkeypatch.setattr(sys, "argv", [launcher, "-f", connection, "--api-key", "s3cr3t"])
        path = tmp_path / "run.jsonl"
        with experiment_log(path, name=name, fmt="jsonl"):
            pass
        start = _jsonl(path)[0]
        assert start["event"] == "start"
        assert start["program"] == launcher
        assert "argv" not in start
        text = path.read_text()
        assert connection not in text
        assert "s3cr3t" not in text

    def test_text_format_lines_parse(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.log"
        scope = experiment_log(path, name=name)
        with scope as log:
            log.info("epoch %d", 1)
            log.warning("loss is nan")
        matches = [TEXT_LINE.match(line) for line in path.read_text().splitlines()]
        assert all(matches), path.read_text()
        assert {m["name"] for m in matches if m} == {name}
        assert {m["run"] for m in matches if m} == {_report(scope).run_id}
        assert [m["message"] for m in matches if m][1:3] == ["epoch 1", "loss is nan"]
        assert [m[1] for m in matches if m] == ["INFO", "INFO", "WARNING", "INFO"]

    def test_jsonl_format_one_object_per_record(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.jsonl"
        scope = experiment_log(path, name=name, fmt="jsonl")
        with scope as log:
            log.info("step", extra={"step": 3, "loss": 0.25})
        start, step, end = _jsonl(path)
        assert step == {
            "time": step["time"],
            "level": "INFO",
            "logger": name,
            "message": "step",
            "step": 3,
            "loss": 0.25,
            "run_id": _report(scope).run_id,
        }
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", step["time"])
        assert (start["event"], start["pid"]) == ("start", os.getpid())
        assert (end["event"], end["status"]) == ("end", "ok")
        assert end["duration_s"] >= 0
        assert _report(scope).records == 3
        assert _report(scope).fmt == "jsonl"

    def test_error_is_logged_with_its_traceback_and_re_raised(
        self, tmp_path: Path, name: str
    ) -> None:
        path = tmp_path / "run.jsonl"
        scope = experiment_log(path, name=name, fmt="jsonl")

        def train_step() -> None:
            raise ValueError("loss diverged")

        with pytest.raises(ValueError, match="loss diverged"), scope:
            train_step()
        records = _jsonl(path)
        assert [r["event"] for r in records] == ["start", "exception", "end"]
        failed = records[1]
        assert (failed["level"], failed["message"]) == (
            "ERROR",
            "experiment failed: ValueError: loss diverged",
        )
        assert "in train_step" in failed["exception"]
        assert (records[2]["level"], records[2]["status"]) == ("WARNING", "error")
        assert (_report(scope).status, _report(scope).error) == (
            "error",
            "ValueError: loss diverged",
        )

    def test_interrupt_is_logged_as_interrupted(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.jsonl"
        scope = experiment_log(path, name=name, fmt="jsonl")
        with pytest.raises(KeyboardInterrupt), scope:
            raise KeyboardInterrupt
        assert _events(path) == ["start", "interrupted", "end"]
        assert _report(scope).status == "interrupted"


class TestLogger:
    def test_level_filtering(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.jsonl"
        with experiment_log(path, name=name, fmt="jsonl", level="WARNING") as log:
            log.debug("hidden")
            log.info("hidden too")
            log.warning("kept")
        assert [r["message"] for r in _jsonl(path) if "event" not in r] == ["kept"]
        assert _events(path) == ["start", None, "end"]  # lifecycle records whatever the level

    def test_numeric_level_and_debug(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.jsonl"
        with experiment_log(path, name=name, fmt="jsonl", level=logging.DEBUG) as log:
            log.debug("shown")
        assert "shown" in path.read_text()

    def test_logger_level_and_propagation_are_restored(self, tmp_path: Path, name: str) -> None:
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        with experiment_log(tmp_path / "run.log", name=name, level="DEBUG") as log:
            assert log is logger
            assert (log.level, log.propagate) == (logging.DEBUG, False)
        assert (logger.level, logger.propagate) == (logging.ERROR, True)
        assert logger.handlers == []

    def test_does_not_propagate_to_root_by_default(
        self, tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.INFO)  # a handler on the root logger, like basicConfig's
        with experiment_log(tmp_path / "quiet.log", name=name) as log:
            log.info("only in the file")
        with experiment_log(tmp_path / "loud.log", name=name, propagate=True) as log:
            log.info("in the file and on the console")
        assert [r.getMessage() for r in caplog.records] == ["in the file and on the console"]

    def test_tee_writes_printed_lines_into_the_log(
        self, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "run.jsonl"
        stdout, stderr = sys.stdout, sys.stderr
        with experiment_log(path, name=name, fmt="jsonl", tee=True):
            print("epoch 1 done")
            print("warning: slow", file=sys.stderr)
            print("no newline at the end", end="")
        assert (sys.stdout, sys.stderr) == (stdout, stderr)
        teed = [(r["event"], r["level"], r["message"]) for r in _jsonl(path)[1:-1]]
        assert teed == [
            ("stdout", "INFO", "epoch 1 done"),
            ("stderr", "WARNING", "warning: slow"),
            ("stdout", "INFO", "no newline at the end"),
        ]
        out = capsys.readouterr()
        assert out.out == "epoch 1 done\nno newline at the end"  # still printed
        assert out.err == "warning: slow\n"

    def test_without_tee_prints_stay_out_of_the_log(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.log"
        with experiment_log(path, name=name):
            print("only on the console")
        assert "only on the console" not in path.read_text()


class TestNoLeaks:
    def test_handler_count_back_to_baseline_after_200_scopes(
        self, tmp_path: Path, name: str
    ) -> None:
        logger, root = logging.getLogger(name), logging.getLogger()
        baseline = (len(logger.handlers), len(root.handlers))
        for i in range(200):
            try:
                with experiment_log(tmp_path / "run.log", name=name) as log:
                    log.info("run %d", i)
                    if i % 2:
                        raise RuntimeError(i)
            except RuntimeError:
                pass
        assert (len(logger.handlers), len(root.handlers)) == baseline

    def test_no_fd_leak_after_200_scopes(self, tmp_path: Path, name: str, fd_count: Any) -> None:
        with experiment_log(tmp_path / "warm.log", name=name):
            pass  # first use: lazy imports, caches
        gc.collect()  # fds of earlier tests' garbage must not close during the loop
        before = fd_count()
        for i in range(200):
            try:
                with experiment_log(tmp_path / f"run{i % 7}.log", name=name, fmt="jsonl"):
                    if i % 3 == 0:
                        raise KeyError(i)
            except KeyError:
                pass
        assert fd_count() <= before


class TestStacked:
    def test_records_the_reports_of_scopes_inside_it(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.jsonl"
        with experiment_log(path, name=name, fmt="jsonl"), timed("load"):
            pass
        report = _jsonl(path)[1]
        assert report["event"] == "report"
        assert report["message"].startswith("timed  load  wall ")
        assert (report["report"]["scope"], report["report"]["label"]) == ("timed", "load")

    def test_two_threads_each_log_only_their_own_scopes(self, tmp_path: Path, name: str) -> None:
        barrier = threading.Barrier(2)

        def work(i: int) -> None:
            with experiment_log(tmp_path / f"t{i}.jsonl", name=f"{name}-{i}", fmt="jsonl"):
                barrier.wait()  # both logs open at once
                with timed(f"thread-{i}"):
                    pass
                barrier.wait()  # both timed reports published while both logs are open

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for i in range(2):
            labels = [
                r["report"]["label"]
                for r in _jsonl(tmp_path / f"t{i}.jsonl")
                if r.get("event") == "report"
            ]
            assert labels == [f"thread-{i}"]

    def test_a_scope_opened_in_the_log_and_closed_after_it_is_not_recorded(
        self, tmp_path: Path, name: str
    ) -> None:
        path = tmp_path / "run.jsonl"
        later = timed("outlives the log")
        log = experiment_log(path, name=name, fmt="jsonl")
        log.__enter__()
        later.__enter__()
        log.__exit__(None, None, None)
        later.__exit__(None, None, None)
        assert _events(path) == ["start", "end"]
        assert later.report is not None  # it still reports, to the history

    def test_reports_after_the_log_closed_are_not_recorded(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.jsonl"
        with experiment_log(path, name=name, fmt="jsonl"):
            pass
        with timed():
            pass
        assert _events(path) == ["start", "end"]

    def test_decorated_function_logs_one_run_per_call(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / "run.jsonl"

        @experiment_log(path, name=name, fmt="jsonl")
        def run(i: int) -> int:
            logging.getLogger(name).info("call %d", i)
            return i

        assert [run(1), run(2)] == [1, 2]
        starts = [r for r in _jsonl(path) if r.get("event") == "start"]
        assert len(starts) == 2
        assert starts[0]["run_id"] != starts[1]["run_id"]


class TestBadInput:
    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"fmt": "xml"}, "fmt must be 'text' or 'jsonl'"),
            ({"mode": "x"}, "mode must be 'a' .* or 'w'"),
            ({"level": "LOUD"}, "unknown log level 'LOUD': use one of DEBUG"),
            ({"name": ""}, "name must be a non-empty logger name"),
            ({"level": "99999999999999999999999"}, "a number from 0 to 50"),
            ({"level": 10**30}, "a number from 0 to 50"),
            ({"level": 51}, "a number from 0 to 50"),
            ({"level": -5}, "a number from 0 to 50"),
            ({"level": "²"}, "unknown log level"),
        ],
    )
    def test_bad_option_raises_option_error(
        self, tmp_path: Path, options: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(OptionError, match=message):
            experiment_log(tmp_path / "run.log", **options)
        assert not (tmp_path / "run.log").exists()

    def test_directory_path_raises_path_error_with_an_example(self, tmp_path: Path) -> None:
        with pytest.raises(PathError, match=r"is a directory: give a file inside it, e\.g\."):
            experiment_log(tmp_path)

    def test_a_path_written_as_a_folder_raises_path_error_and_makes_nothing(
        self, tmp_path: Path
    ) -> None:
        # Before: a log file named "runs" was made, and "runs/a.log" then failed.
        for written in ("runs/", "runs/.", "runs//"):
            with pytest.raises(PathError, match=r"names a folder: give a file inside"):
                experiment_log(f"{tmp_path}/{written}")
        assert list(tmp_path.iterdir()) == []

    def test_path_under_a_file_raises_path_error(self, tmp_path: Path) -> None:
        (tmp_path / "file").write_text("")
        with pytest.raises(PathError, match="is a file, not a directory"):
            experiment_log(tmp_path / "file" / "run.log")

    @pytest.mark.parametrize("level", [0, 5, "50", "critical"])
    def test_a_level_some_record_can_reach_is_taken(self, tmp_path: Path, level: Any) -> None:
        assert experiment_log(tmp_path / "run.log", level=level).level <= logging.CRITICAL

    def test_a_registered_level_above_critical_is_taken(self, tmp_path: Path) -> None:
        logging.addLevelName(61, "RESMAGIC_TEST_FATAL")
        assert experiment_log(tmp_path / "run.log", level="61").level == 61
        assert experiment_log(tmp_path / "run.log", level="resmagic_test_fatal").level == 61

    @pytest.mark.parametrize("path", ["/dev/full", "/dev/zero"])
    def test_device_path_raises_path_error(self, path: str) -> None:
        with pytest.raises(PathError, match="is a device, not a file a log can be written to"):
            experiment_log(path)

    def test_fifo_path_raises_path_error_instead_of_hanging(self, tmp_path: Path) -> None:
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)  # opening it to write would wait for a reader, forever
        with pytest.raises(PathError, match="FIFO"):
            experiment_log(fifo)

    def test_a_path_with_a_nul_character_raises_path_error(self, tmp_path: Path) -> None:
        with pytest.raises(PathError, match="NUL"):
            experiment_log(f"{tmp_path}/a\x00b.log")

    def test_devnull_throws_the_log_away(self, name: str) -> None:
        with experiment_log(os.devnull, name=name) as log:
            log.info("gone")
        assert logging.getLogger(name).handlers == []

    def test_a_log_the_disk_refuses_on_entry_raises_path_error(self, tmp_path: Path) -> None:
        scope = experiment_log(tmp_path / "gone" / "run.log")  # fine when built
        (tmp_path / "gone").write_text("")  # a file now sits where the folder would go
        with pytest.raises(PathError, match="cannot open the log"), scope:
            pytest.fail("the body must not run")
        assert logging.getLogger("experiment").handlers == []


def test_a_teed_stdout_is_still_a_text_stream(tmp_path: Path) -> None:
    import io

    seen: list[object] = []
    original = sys.stdout
    with experiment_log(tmp_path / "tee.log", name="resmagic-test-tee", tee=True):
        seen += [isinstance(sys.stdout, io.TextIOBase), sys.stdout.writable()]
        seen.append(sys.stdout is not original and sys.stdout.encoding == original.encoding)
        print("through the tee")
    assert seen == [True, True, True]
    assert "through the tee" in (tmp_path / "tee.log").read_text()


class TestFullDisk:
    """Reliability 2026-12-06 #5: a full disk is one note, not a failed cell and 482 tracebacks."""

    def _log_500(self, path: Path | str, name: str) -> experiment_log:
        scope = experiment_log(path, name=name, fmt="jsonl")
        with scope as log:
            for i in range(500):
                log.info("record %d padding padding padding padding padding padding", i)
        return scope

    def test_a_full_disk_ends_the_block_ok_with_one_note_and_whole_lines(
        self, tmp_path: Path, name: str, capfd: pytest.CaptureFixture[str]
    ) -> None:
        with small_tmpfs(tmp_path / "disk") as disk:
            fill(disk, leave=PAGE)  # one page left: the first ~20 records fit
            scope = self._log_500(disk / "run.log", name)  # raised OSError at exit before
            lines = (disk / "run.log").read_bytes().split(b"\n")
        assert lines[-1] == b"", "the file ends with a whole line"
        records = [json.loads(line) for line in lines[:-1]]
        report = _report(scope)
        assert report.status == "ok"
        assert resmagic.history()[-1] is report  # published, with its note
        assert 0 < report.records == len(records) < 100
        assert report.records + report.lost == 502  # start, 500, end
        assert report.notes == (
            f"{disk / 'run.log'}: {report.lost} of 502 records not written:"
            " [Errno 28] No space left on device",
        )
        err = capfd.readouterr().err
        assert "Logging error" not in err
        assert err == ""
        assert logging.getLogger(name).handlers == []

    def test_a_line_longer_than_the_space_left_is_cut_back_not_left_half_written(
        self, tmp_path: Path, name: str
    ) -> None:
        with small_tmpfs(tmp_path / "disk") as disk:
            fill(disk, leave=2 * PAGE)
            with experiment_log(disk / "big.log", name=name, fmt="jsonl") as log:
                for i in range(20):
                    log.info("big %d %s", i, "x" * 3 * PAGE)  # each spans pages
            data = (disk / "big.log").read_bytes()
        assert data.endswith(b"\n")
        assert b"big" not in data  # the first big line filled the disk, then was cut back
        assert [json.loads(line)["event"] for line in data.splitlines()] == ["start", "end"]
        report = resmagic.history()[-1]
        assert isinstance(report, LogReport)
        assert (report.records, report.lost) == (2, 20)

    def test_a_disk_with_no_room_at_all_ends_the_block_ok_with_every_record_counted_lost(
        self, tmp_path: Path, name: str, capfd: pytest.CaptureFixture[str]
    ) -> None:
        # /dev/full was this test's disk until option checks refused devices as logs
        # (reliability #9): a tmpfs filled to the last page refuses every write the same way.
        with small_tmpfs(tmp_path / "disk") as disk:
            fill(disk)
            scope = self._log_500(disk / "run.log", name)
            assert (disk / "run.log").read_bytes() == b""
        report = _report(scope)
        assert (report.status, report.records, report.lost) == ("ok", 0, 502)
        assert report.notes == (
            f"{disk / 'run.log'}: 502 of 502 records not written:"
            " [Errno 28] No space left on device",
        )
        assert resmagic.history()[-1] is report
        assert "Logging error" not in capfd.readouterr().err

    def test_an_error_in_the_body_stays_that_error_on_a_full_disk(
        self, tmp_path: Path, name: str
    ) -> None:
        with small_tmpfs(tmp_path / "disk") as disk:
            fill(disk)
            scope = experiment_log(disk / "run.log", name=name)
            with pytest.raises(ZeroDivisionError), scope:
                1 / 0  # noqa: B018
        report = _report(scope)
        assert (report.status, report.error) == ("error", "ZeroDivisionError: division by zero")
        assert report.lost == 3  # start, the traceback record, end


def test_a_log_that_cannot_be_opened_leaves_no_handler_to_break_loggings_exit(
    tmp_path: Path,
) -> None:
    import subprocess

    # The refusal is kept (IPython keeps the last one in sys.last_value). logging's exit
    # hook closes the handlers newest first: one made before the refusal comes after it.
    script = (
        f"import sys; sys.path.insert(0, {ROOT!r})  # this tree, whatever is installed\n"
        "import logging\n"
        "from resmagic import experiment_log\n"
        "class Earlier(logging.Handler):\n"
        "    def close(self): print('closed'); super().close()\n"
        "earlier = Earlier()\n"
        "try:\n"
        "    with experiment_log('/proc/resmagic-test.log'): pass\n"
        "except ValueError as e:\n"
        "    kept = e\n"
        "else:\n"
        "    raise SystemExit('the log opened')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # before: "Exception ignored in atexit callback ... no 'file'"
    assert done.stdout == "closed\n"
