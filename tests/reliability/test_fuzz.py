"""Any option line gives either a normal run or a UsageError before the body runs: nothing else."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import resmagic
from resmagic.ipython.cells.options import asks_help

EXAMPLES = int(os.environ.get("RESMAGIC_FUZZ_EXAMPLES", "120"))


def _safe(token: str) -> str:
    # Random text must not write outside the test's folder: no absolute paths, no "..".
    token = token.replace("..", "_")
    return "./" + token if token.startswith(("/", "~")) else token


SURROGATES: tuple[Literal["Cs"], ...] = ("Cs",)  # typed as hypothesis' category names
WORDS = st.text(
    alphabet=st.characters(blacklist_categories=SURROGATES, blacklist_characters="\x00\n\r"),
    max_size=12,
).map(_safe)
QUOTED = WORDS.map(lambda w: f'"{w}"') | WORDS.map(lambda w: f"'{w}'")
BROKEN = st.sampled_from(['"unclosed', "'half", 'a"b', "\\", "{missing}", "$undefined", "{0}"])
PATHS = st.sampled_from(
    [
        "{tmp}",  # a directory
        "{tmp}/ok.log",
        "{tmp}/deep/er/run.log",
        '"{tmp}/with space/é.log"',
        "~/home.log",
        "relative/run.log",
        "/proc/resmagic/nope.log",  # cannot be created, even by root
        "/proc/version",  # exists, not writable/not SQLite
        "{tmp}/afile/under.log",  # parent is a file
        ":memory:",
        "",
        "/dev/null",  # a log may throw records away; a database cannot live there
        "/dev/full",  # a device: refused as a log or database (reliability 2026-12-06 #9)
        "{tmp}/fifo",  # a FIFO: refused, never opened (writing would wait for a reader)
    ]
)
DEVICES = st.sampled_from(["cuda:-1", "cuda:99", "tpu", "cuda", "host", "cpu", "0", "7", "cuda:x"])
FLAGS = st.sampled_from(
    [
        "--gc",
        "--no-empty-cache",
        "--reclaim",
        "--reclaim oom",
        "--reclaim bogus",
        "--no-panel",
        "-q",
        "--quiet",
        "--no-sync",
        "--name",
        "--name exp",
        "--level",
        "--level DEBUG",
        "--level 5",
        "--level LOUD",
        "--format jsonl",
        "--format xml",
        "--mode w",
        "--mode x",
        "--as",
        "--as v",
        "--as 1abc",
        "--as 'a b'",
        "--as get_ipython",
        "--as _",
        "--as In",
        "--as for",
        "--level 99999999999999999999999",
        "--tee",
        "--timeout",
        "--timeout 0.1",
        "--timeout -1",
        "--timeout nan",
        "--timeout inf",
        "--timeout 1e300",
        "--bogus",
        "-x",
        "--",
        "-",
    ]
)
TOKENS = st.one_of(WORDS, QUOTED, BROKEN, PATHS, DEVICES, FLAGS)
LINES = st.lists(TOKENS, max_size=6).map(" ".join)


def _all_handlers() -> int:
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    return sum(len(lg.handlers) for lg in loggers if isinstance(lg, logging.Logger))


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "afile").write_text("a file, not a folder")
    os.mkfifo(tmp_path / "fifo")
    # A reader stays open: on code that opens the FIFO anyway the test fails, never hangs.
    reader = os.open(tmp_path / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    yield tmp_path
    os.close(reader)


@pytest.mark.parametrize("magic", ["gpu_scope", "timed", "experiment_log", "db_transaction"])
def test_option_line_runs_or_is_refused_before_the_body(ip: Any, sandbox: Path, magic: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(line=LINES)
    def check(line: str) -> None:
        seen.add(_outcome(ip, magic, line))

    def _outcome(ip: Any, magic: str, line: str) -> str:
        line = line.replace("{tmp}", str(sandbox))
        ip.user_ns.pop("ran_body", None)
        handlers = _all_handlers()
        reports = len(resmagic.history())
        outcome = "ran"
        try:
            ip.run_cell_magic(magic, line, "ran_body = True")
        except UsageError:
            assert "ran_body" not in ip.user_ns, f"refused {line!r} after the body ran"
            outcome = "refused"
        else:
            if ip.user_ns.get("ran_body") is not True:
                assert asks_help(line), f"{line!r}: neither ran nor refused"
                outcome = "help"
            else:
                assert len(resmagic.history()) > reports
        assert _all_handlers() == handlers, f"{line!r} leaked a logging handler"
        return outcome

    seen: set[str] = set()
    check()
    assert {"ran", "refused"} <= seen, seen  # the strategy reaches both outcomes


# Reliability 2026-12-06 #9: each of these ran the body on 8eba587. Whatever good options
# stand beside one, in whatever order, the line is refused and the body does not run.
BAD = {
    "experiment_log": [
        ("--as", "1abc"),
        ("--as", "'a b'"),
        ("--as", "get_ipython"),
        ("--as", "_"),
        ("--as", "_oh"),
        ("--as", "Out"),
        ("--as", "for"),
        ("--level", "99999999999999999999999"),
        ("--level", "51"),
        ("", "/dev/full"),
        ("", "{tmp}/fifo"),
    ],
    "db_transaction": [
        ("--as", "get_ipython"),
        ("--as", "1x"),
        ("--timeout", "nan"),
        ("--timeout", "inf"),
        ("--timeout", "1e300"),
        ("", "/dev/null"),
        ("", "{tmp}/fifo"),
    ],
}
GOOD = {
    "experiment_log": [
        ("", "{tmp}/ok.log"),
        ("--as", "log"),
        ("--level", "DEBUG"),
        ("--format", "jsonl"),
        ("--mode", "w"),
        ("--name", "exp"),
        ("--tee", ""),
        ("-q", ""),
    ],
    "db_transaction": [("", "{tmp}/ok.db"), ("--as", "cur"), ("--timeout", "0.5"), ("-q", "")],
}


@st.composite
def _bad_lines(draw: st.DrawFn, magic: str) -> str:
    bad = draw(st.sampled_from(BAD[magic]))
    # An option given twice takes its last value: leave out the good one the bad one names.
    goods = [good for good in GOOD[magic] if good[0] != bad[0]]
    chosen = draw(st.lists(st.sampled_from(goods), unique=True, max_size=len(goods)))
    if bad[0] != "":
        chosen.append(GOOD[magic][0])  # the path, unless the bad option is the path
    parts = draw(st.permutations([*chosen, bad]))
    return " ".join(" ".join(p for p in part if p) for part in parts)


@pytest.mark.parametrize("magic", sorted(BAD))
def test_a_bad_option_among_good_ones_is_refused_before_the_body(
    ip: Any, sandbox: Path, magic: str
) -> None:
    @settings(
        max_examples=EXAMPLES // 2,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(line=_bad_lines(magic))
    def check(line: str) -> None:
        line = line.replace("{tmp}", str(sandbox))
        ip.user_ns.pop("ran_body", None)
        with pytest.raises(UsageError):
            ip.run_cell_magic(magic, line, "ran_body = True")
        assert "ran_body" not in ip.user_ns, f"refused {line!r} after the body ran"
        made = sorted(p.name for p in sandbox.iterdir())
        assert made == ["afile", "fifo"], f"{line!r} made {made}"

    check()


COMMAND_TOKENS = st.one_of(
    WORDS,
    BROKEN,
    PATHS.map(lambda p: f"--log {p}"),
    DEVICES.map(lambda d: f"--device {d}"),
    st.sampled_from(
        [
            "on",
            "off",
            "--no-panel",
            "--scopes timed",
            "--scopes timed,timed",
            "--scopes gpu_scope,timed,gpu_scope",
            "--scopes ''",
            "--scopes bogus",
            "--device",
            "--log",
            "3",
            "-1",
            "--bogus",
        ]
    ),
)
COMMAND_LINES = st.tuples(
    st.sampled_from(["watch on", "watch on", "watch", "who", "history", "timings", "status"]),
    st.lists(COMMAND_TOKENS, max_size=4).map(" ".join),
).map(" ".join)


def test_resmagic_line_runs_or_is_a_usage_error(ip: Any, sandbox: Path) -> None:
    magics = ip.magics_manager.registry["ResMagics"]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(line=COMMAND_LINES)
    def check(line: str) -> None:
        line = line.replace("{tmp}", str(sandbox))
        try:
            ip.run_line_magic("resmagic", line)
        except UsageError:
            assert not magics.session.watcher.active, f"{line!r} was refused but turned watch on"
        else:
            options = magics.session.watcher.options
            if options is not None:
                assert len(set(options.scopes)) == len(options.scopes), line
                log = os.path.abspath(os.path.expanduser(options.log or os.devnull))
                assert log == os.devnull or os.path.isfile(log), line
        finally:
            magics.session.watcher.stop()
            seen.add(line.split()[0])

    seen: set[str] = set()
    check()
    assert seen == {"watch", "who", "history", "timings", "status"}
