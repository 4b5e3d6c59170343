"""Options, help, and bad input: a UsageError that says what to type, before the body runs."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

import resmagic
from resmagic.report import TimingReport

pytestmark = pytest.mark.usefixtures("fresh_history")

BODY = "ran_body = True"


def _refused(ip: Any, magic: str, line: str) -> str:
    """Run a cell that must be refused; prove the body never ran; return the message."""
    ip.user_ns.pop("ran_body", None)
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic(magic, line, BODY)
    assert "ran_body" not in ip.user_ns, "the body ran although the magic refused it"
    return str(info.value)


class TestBadInput:
    @pytest.mark.parametrize("magic", ["gpu_scope", "timed", "experiment_log", "db_transaction"])
    def test_unknown_option(self, ip: Any, magic: str, tmp_path: Path) -> None:
        line = (
            f"{tmp_path / 'x'} --bogus"
            if magic in ("experiment_log", "db_transaction")
            else "--bogus"
        )
        assert "--bogus" in _refused(ip, magic, line)

    @pytest.mark.parametrize("magic", ["experiment_log", "db_transaction"])
    def test_missing_path(self, ip: Any, magic: str) -> None:
        assert "path" in _refused(ip, magic, "")

    @pytest.mark.parametrize("magic", ["experiment_log", "db_transaction"])
    def test_path_is_a_directory(self, ip: Any, magic: str, tmp_path: Path) -> None:
        message = _refused(ip, magic, str(tmp_path))
        assert "directory" in message

    def test_log_path_that_cannot_be_opened(self, ip: Any) -> None:
        message = _refused(ip, "experiment_log", "/proc/resmagic-test.log")
        assert "resmagic-test.log" in message

    def test_log_path_under_a_file(self, ip: Any, tmp_path: Path) -> None:
        (tmp_path / "afile").write_text("x")
        assert "not a directory" in _refused(
            ip, "experiment_log", str(tmp_path / "afile" / "a.log")
        )

    def test_unwritable_folder(self, ip: Any, tmp_path: Path) -> None:
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere; /proc covers the refusal path")
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        assert "not writable" in _refused(ip, "experiment_log", str(locked / "a.log"))

    @pytest.mark.parametrize("device", ["cuda:7", "7", "tpu", "cuda:-1", "cuda:x"])
    def test_unknown_device(self, ip: Any, device: str) -> None:
        assert "device" in _refused(ip, "gpu_scope", device)

    def test_unknown_device_names_what_exists(self, ip: Any) -> None:
        assert "sees no GPU" in _refused(ip, "gpu_scope", "cuda:7")

    def test_bad_choice(self, ip: Any) -> None:
        assert "invalid choice" in _refused(ip, "gpu_scope", "--reclaim sometimes")

    def test_bad_level(self, ip: Any, tmp_path: Path) -> None:
        assert "level" in _refused(ip, "experiment_log", f"{tmp_path / 'l.log'} --level LOUD")

    def test_not_a_sqlite_database(self, ip: Any, tmp_path: Path) -> None:
        text = tmp_path / "notes.txt"
        text.write_text("just some notes, not a database\n")
        assert "not an SQLite database" in _refused(ip, "db_transaction", str(text))

    def test_unclosed_quote(self, ip: Any) -> None:
        assert "quote" in _refused(ip, "timed", "'train")

    def test_stacked_line_is_checked_before_anything_runs(self, ip: Any) -> None:
        before = len(resmagic.history())
        ip.user_ns.pop("ran_body", None)
        with pytest.raises(UsageError):
            ip.run_cell_magic("timed", "-q", f"%%gpu_scope cuda:9\n{BODY}")
        assert "ran_body" not in ip.user_ns
        assert len(resmagic.history()) == before

    def test_empty_body_under_stacked_magic(self, ip: Any) -> None:
        with pytest.raises(UsageError, match="empty"):
            ip.run_cell_magic("timed", "", "%%gpu_scope\n")

    def test_refused_log_leaves_no_handler(self, ip: Any) -> None:
        logger = logging.getLogger("experiment")
        handlers = list(logger.handlers)
        _refused(ip, "experiment_log", "/proc/nope/a.log")
        assert logger.handlers == handlers


class TestHelp:
    @pytest.mark.parametrize("magic", ["gpu_scope", "timed", "experiment_log", "db_transaction"])
    def test_help_option_prints_help_and_does_not_run(
        self, ip: Any, magic: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ip.user_ns.pop("ran_body", None)
        assert ip.run_cell_magic(magic, "--help", BODY) is None
        assert "ran_body" not in ip.user_ns
        out = capsys.readouterr().out
        assert f"%%{magic} [" in out  # the usage line names the cell magic, not a line magic
        assert "--quiet" in out

    @pytest.mark.parametrize("magic", ["gpu_scope", "timed", "experiment_log", "db_transaction"])
    def test_question_mark_help_is_the_option_list(self, ip: Any, magic: str) -> None:
        doc = _inspected(ip, f"%%{magic}")  # what `%%timed?` and a frontend's inspector show
        assert f"%%{magic} [" in doc
        assert "--quiet" in doc
        assert "Example" in doc

    def test_parsers_are_built_when_first_needed_and_question_mark_still_lists_options(
        self,
    ) -> None:
        # Issue 26: building the four parsers was ~3 ms of every %load_ext. A fresh process:
        # none built at load; `?` builds one and shows its options; a %% line builds its own.
        code = (
            "from IPython.core.interactiveshell import InteractiveShell\n"
            "from resmagic.ipython.magics import ResMagics\n"
            "ip = InteractiveShell.instance()\n"
            "ip.run_line_magic('load_ext', 'resmagic')\n"
            "built = lambda: sorted(m for m in ('gpu_scope', 'timed', 'experiment_log',"
            " 'db_transaction') if 'parser' in vars(getattr(ResMagics, m)))\n"
            "print(built())\n"
            "print('--no-sync' in ip.object_inspect_mime('%%timed')['text/plain'], built())\n"
            "assert ip.run_cell('%%gpu_scope -q\\npass').success\n"
            "print(built())\n"
        )
        env = {**os.environ, "IPYTHONDIR": tempfile.mkdtemp()}
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        assert done.stdout.splitlines() == [
            "[]",
            "True ['timed']",
            "['gpu_scope', 'timed']",
        ]

    @pytest.mark.parametrize("line", ["help", "--help", "-h"])
    def test_resmagic_line_magic_has_help(
        self, ip: Any, capsys: pytest.CaptureFixture[str], line: str
    ) -> None:
        # `%resmagic --help` was "unknown command '--help'", where every magic takes it.
        capsys.readouterr()
        ip.run_line_magic("resmagic", line)
        out = capsys.readouterr().out
        assert "history" in out
        assert out.startswith("Show what resmagic can measure")


class TestOutput:
    def test_text_report_is_printed(self, ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
        ip.run_cell("%%timed train\npass", store_history=True)
        assert capsys.readouterr().out.startswith("timed  train  wall ")

    def test_gpu_scope_without_gpu_says_why_once(
        self, ip: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from resmagic.ipython.views import notes

        notes._said.clear()
        ip.run_cell("%%gpu_scope --no-panel\npass", store_history=True)
        out = capsys.readouterr().out
        assert "gpu_scope  host " in out
        assert "no GPU row:" in out
        ip.run_cell("%%gpu_scope --no-panel\npass", store_history=True)
        again = capsys.readouterr().out
        assert "gpu_scope  host " in again
        assert "no GPU row:" not in again

    def test_quiet_shows_nothing_but_records(
        self, ip: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        ip.run_cell("%%timed --quiet\npass", store_history=True)
        assert capsys.readouterr().out == ""
        assert resmagic.history()[-1].scope == "timed"

    def test_variables_expand_in_option_lines(self, ip: Any, tmp_path: Path) -> None:
        ip.user_ns["run_name"] = "lr3"
        ip.user_ns["log_dir"] = str(tmp_path)
        ip.run_cell(
            "%%timed {run_name} -q\n%%experiment_log {log_dir}/{run_name}.log -q\npass",
            store_history=True,
        )
        assert (tmp_path / "lr3.log").exists()
        timing = next(r for r in resmagic.history() if r.scope == "timed")
        assert isinstance(timing, TimingReport)
        assert timing.label == "lr3"

    def test_dollar_variables_and_braces_expand_as_ipython_does(self, ip: Any) -> None:
        # A line with none of $ { } is used as written (no formatter per cell: issue 26);
        # one with any of them is formatted as before.
        ip.user_ns["step"] = "s9"
        for line, label in (("$step", "s9"), ("a}}b", "a}b"), ("plain", "plain")):
            ip.run_cell(f"%%timed {line} -q\npass", store_history=True)
            timing = resmagic.history()[-1]
            assert isinstance(timing, TimingReport)
            assert timing.label == label

    def test_path_with_spaces_and_unicode(self, ip: Any, tmp_path: Path) -> None:
        target = tmp_path / "my runs" / "été 1.log"
        ip.run_cell(f'%%experiment_log "{target}" -q\nlogger.info("ok")', store_history=True)
        assert "ok" in target.read_text(encoding="utf-8")


class TestResmagicCommand:
    def test_status_names_every_probe(self, ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
        ip.run_line_magic("resmagic", "status")
        out = capsys.readouterr().out
        for probe in ("host:", "torch allocator:", "NVML", "sampler:"):
            assert probe in out

    def test_history_table_lists_reports(self, ip: Any) -> None:
        ip.run_cell("%%timed table-row -q\npass", store_history=True)
        table = ip.run_line_magic("resmagic", "history")
        assert "table-row" in repr(table)
        assert "<table" in table._repr_html_()

    def test_history_takes_a_count(self, ip: Any) -> None:
        for i in range(3):
            ip.run_cell(f"%%timed n{i} -q\npass", store_history=True)
        assert len(ip.run_line_magic("resmagic", "history 2").rows) == 2
        with pytest.raises(UsageError):
            ip.run_line_magic("resmagic", "history many")

    def test_clear_empties_history(self, ip: Any) -> None:
        ip.run_cell("%%timed -q\npass", store_history=True)
        ip.run_line_magic("resmagic", "clear")
        assert resmagic.history() == []

    def test_config_sets_and_validates(self, ip: Any) -> None:
        old = resmagic.settings.sample_interval
        try:
            ip.run_line_magic("resmagic", "config sample_interval=0.05")
            assert resmagic.settings.sample_interval == 0.05
            with pytest.raises(UsageError, match="sample_interval"):
                ip.run_line_magic("resmagic", "config sample_interval=fast")
            with pytest.raises(UsageError, match="unknown setting"):
                ip.run_line_magic("resmagic", "config speed=1")
        finally:
            resmagic.settings.sample_interval = old

    def test_unknown_command(self, ip: Any) -> None:
        with pytest.raises(UsageError):
            ip.run_line_magic("resmagic", "explode")


def test_a_label_with_spaces_is_told_to_use_quotes(ip: Any) -> None:
    with pytest.raises(UsageError, match=r'needs quotes: %%timed "my long label"'):
        ip.run_cell_magic("timed", "my long label", "pass")
    result = ip.run_cell('%%timed "my long label" -q\npass', store_history=True)
    assert result.success


def test_resmagic_help_is_dedented(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    ip.run_line_magic("resmagic", "help")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Show what resmagic can measure")
    assert "Usage::" in lines
    assert any(line.startswith("    %resmagic history [N]") for line in lines)


def test_a_cell_that_leaves_a_lot_held_names_the_holders(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("resmagic", "config held_mib=64")
    try:
        capsys.readouterr()
        ip.run_cell("%%gpu_scope --no-panel\nbig_block = bytearray(b'x') * (96 << 20)", True)
        out = capsys.readouterr().out
        ip.run_cell("%%gpu_scope --no-panel\nsmall_block = bytearray(1 << 20)", True)
        quiet = capsys.readouterr().out
    finally:
        ip.run_line_magic("resmagic", "config held_mib=256")
        ip.user_ns.pop("big_block", None)
    assert "  host held by: big_block 96.0 MiB" in out
    assert "held by" not in quiet


@pytest.mark.parametrize("command", ["status", "history", "watch", "who", "timings", "config"])
def test_every_command_has_its_own_help(ip: Any, capsys: Any, command: str) -> None:
    assert ip.run_line_magic("resmagic", f"{command} --help") is None
    out = capsys.readouterr().out
    assert f"%resmagic {command}" in out.splitlines()[2]


# Reliability 2026-12-06 #9: option lines the fuzz found running the body (8eba587), each
# refused now on both paths, with the body's side effect (ran_body) and the scope's (the log
# or database file, a FIFO's bytes) absent.
BAD_AS = [
    "1abc",
    "'a b'",
    "get_ipython",
    "exit",
    "quit",
    "open",
    "In",
    "Out",
    "_",
    "__",
    "___",
    "_i",
    "_iii",
    "_i3",
    "_7",
    "_ih",
    "_oh",
    "_dh",
    "for",
    "__name__",
]
BAD_CELL_LINES = [
    *(f"%%experiment_log {{tmp}}/x.log --as {name}" for name in BAD_AS),
    *(f"%%db_transaction {{tmp}}/t.db --as {name}" for name in ("1x", "Out", "get_ipython")),
    "%%db_transaction --timeout nan {tmp}/t.db",
    "%%db_transaction --timeout inf {tmp}/t.db",
    "%%db_transaction --timeout -inf {tmp}/t.db",
    "%%db_transaction --timeout 1e300 {tmp}/t.db",
    "%%experiment_log {tmp}/x.log --level 99999999999999999999999",
    "%%experiment_log {tmp}/x.log --level 51",
    "%%db_transaction /dev/null",
    "%%db_transaction {tmp}/fifo",
    "%%experiment_log /dev/full",
    "%%experiment_log {tmp}/fifo",
]


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO in tmp_path with a reader open: writing to it never blocks, bytes are seen."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    yield path
    os.close(reader)


def _nothing_made(tmp_path: Path, fifo: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"], "the scope made a file"
    with open(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK), "rb") as pipe:
        assert pipe.read() in (b"", None), "the scope wrote into the FIFO"


@pytest.mark.parametrize("line", BAD_CELL_LINES)
def test_bad_option_is_refused_before_the_body_when_called(
    ip: Any, tmp_path: Path, fifo: Path, line: str
) -> None:
    magic, _, options = line.removeprefix("%%").partition(" ")
    message = _refused(ip, magic, options.replace("{tmp}", str(tmp_path)))
    assert f"%%{magic}" in message or "argument" in message
    _nothing_made(tmp_path, fifo)


@pytest.mark.parametrize("line", BAD_CELL_LINES)
def test_bad_option_is_refused_before_the_body_in_a_cell(
    ip: Any, tmp_path: Path, fifo: Path, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns.pop("ran_body", None)
    result = ip.run_cell(f"{line.replace('{tmp}', str(tmp_path))}\n{BODY}", store_history=True)
    assert isinstance(result.error_before_exec, UsageError), result
    assert "ran_body" not in ip.user_ns, "the body ran although the magic refused it"
    assert "UsageError" in capsys.readouterr().err  # one line, not a traceback
    _nothing_made(tmp_path, fifo)


def test_as_help_says_which_names_are_taken(ip: Any) -> None:
    for magic in ("experiment_log", "db_transaction"):
        doc = " ".join(_inspected(ip, f"%%{magic}").split())
        assert "not a keyword, not a __dunder__ name, and not one of IPython's own" in doc
    assert "from 0 to 2147483" in " ".join(_inspected(ip, "%%db_transaction").split())
    assert "from 0 to 50" in " ".join(_inspected(ip, "%%experiment_log").split())


def _inspected(ip: Any, name: str) -> str:
    """What IPython's inspector shows for ``name?`` (the text a frontend gets)."""
    return str(ip.object_inspect_mime(name)["text/plain"])


@pytest.mark.parametrize("name", ["log", "_log", "match", "print", "été"])
def test_as_takes_an_ordinary_name_and_puts_it_back(ip: Any, tmp_path: Path, name: str) -> None:
    ip.user_ns[name] = "mine"
    result = ip.run_cell(
        f"%%experiment_log {tmp_path}/x.log --as {name} -q\nbound = {name}.name", True
    )
    assert result.success
    assert ip.user_ns["bound"] == "experiment"
    assert ip.user_ns.pop(name) == "mine"


def test_devnull_log_runs_the_cell(ip: Any) -> None:
    ip.user_ns.pop("ran_body", None)
    assert ip.run_cell(f"%%experiment_log {os.devnull} -q\n{BODY}", True).success
    assert ip.user_ns.pop("ran_body") is True


BAD_COMMANDS = [
    "watch on --log ''",
    "watch on --log {tmp}",
    "watch on --log {tmp}/afile/x.log",
    "watch on --log /dev/full",
    "watch on --log {tmp}/fifo",
    "watch on --scopes timed,timed",
    "watch on --scopes gpu_scope,timed,gpu_scope",
    "who --device bogus",
    "who --device cuda:x",
    "who 3 --device tpu",
]


@pytest.mark.parametrize("line", BAD_COMMANDS)
def test_bad_command_option_is_a_usage_error_and_changes_nothing(
    ip: Any, tmp_path: Path, fifo: Path, line: str
) -> None:
    (tmp_path / "afile").write_text("a file, not a folder")
    magics = ip.magics_manager.registry["ResMagics"]
    assert not magics.session.watcher.active
    with pytest.raises(UsageError):  # a PathError here would be a traceback in a notebook
        ip.run_line_magic("resmagic", line.replace("{tmp}", str(tmp_path)))
    assert not magics.session.watcher.active, "watch mode went on although the line was refused"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "fifo"]


def test_who_takes_every_device_spelling(ip: Any) -> None:
    for device in ("host", "cpu", "cuda", "cuda:0", "0"):
        ip.run_line_magic("resmagic", f"who --device {device}")


@pytest.mark.parametrize("value", ["connection", "text"])
def test_a_database_path_that_names_a_variable_is_refused_before_the_body(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # Was: `%%db_transaction conn`, meant as the connection `conn`, made an empty database
    # file named 'conn' in the working directory and ran the body against it.
    monkeypatch.chdir(tmp_path)
    connection = sqlite3.connect(tmp_path / "real.db")
    ip.user_ns["conn"] = connection if value == "connection" else "real.db"
    try:
        message = _refused(ip, "db_transaction", "conn")
    finally:
        del ip.user_ns["conn"]
        connection.close()
    assert "'conn' is a variable" in message
    assert "{conn}" in message or "path" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real.db"], "a file 'conn' was made"


def test_a_database_file_named_like_a_variable_is_taken_when_it_exists(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sqlite3.connect(tmp_path / "conn").close()
    ip.user_ns["conn"] = 1
    try:
        result = ip.run_cell("%%db_transaction conn -q\ncursor.execute('create table t (x)')")
    finally:
        del ip.user_ns["conn"]
    assert result.success, result
