"""Any option line gives either a normal run or a UsageError before the body runs: nothing else."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import resmagic
from resmagic.ipython.layers import asks_help

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
        "--tee",
        "--timeout",
        "--timeout 0.1",
        "--timeout -1",
        "--timeout nan",
        "--timeout inf",
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
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "afile").write_text("a file, not a folder")
    return tmp_path


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
