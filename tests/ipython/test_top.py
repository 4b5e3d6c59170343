"""``%resmagic top`` in an in-process (terminal) IPython shell: the text table, help, mistakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

import resmagic
from resmagic.bus import history
from resmagic.config import settings

TOUCH = "for i in range(0, len({0}), 4096): {0}[i] = 1"


def _alloc(ip: Any, name: str, mib: int, keep: bool) -> None:
    body = f"{name} = bytearray({mib} << 20)\n{TOUCH.format(name)}" + (
        "" if keep else f"\ndel {name}"
    )
    assert ip.run_cell(f"%%gpu_scope -q host\n{body}", store_history=True).success


def test_top_in_a_terminal_is_a_text_table_of_the_cells_ranked(
    ip: Any, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _alloc(ip, "small_", 16, keep=False)
    _alloc(ip, "big_", 96, keep=True)
    big = history()[-1].cell  # In[n] as the cell showed it (IPython 8 and 9 count apart)
    try:
        table = ip.run_line_magic("resmagic", "top --session this")
        text = repr(table)
        lines = text.splitlines()
        assert lines[0].startswith("cells that used the most, by peak above start:")
        assert lines[1].split() == [
            "#",
            "cell",
            "label",
            "peak",
            "above",
            "start",
            "runs",
            "status",
        ]
        assert lines[2].split()[:3] == ["1", "In", f"[{big}]"]  # the 96 MiB cell first
        assert "host" in lines[2]
        assert "█" in lines[2]
        held = repr(ip.run_line_magic("resmagic", "top --by held --session this"))
        assert f"In [{big}]" in held.splitlines()[2]
        html = table._repr_html_()
        assert f"<a href='#execution-count={big}'" in html  # this kernel's number
        assert "class='rm-jump'" in html
    finally:
        ip.run_cell("del big_")


def test_top_help_says_what_it_ranks_and_bad_options_are_usage_errors(
    ip: Any, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("resmagic", "top --help")
    shown = capsys.readouterr().out
    for words in ("--by {peak,held,time}", "--session {this,all}", "--device", "died", "restarts"):
        assert words in shown
    with pytest.raises(UsageError, match="invalid choice"):
        ip.run_line_magic("resmagic", "top --by memory")
    with pytest.raises(UsageError, match="positive number"):
        ip.run_line_magic("resmagic", "top 0")
    for device in ("banana", "cuda:x", "workers", "cuda"):  # before: "banana only", no rows
        with pytest.raises(UsageError, match=r"takes host, cuda:N .*, cuda:N\.nvml or a rank"):
            ip.run_line_magic("resmagic", f"top --device {device}")
    from resmagic.store import ranked_device

    for bad in ("banana", 0.5, True, None):
        with pytest.raises(ValueError, match="device takes host"):
            ranked_device(bad)
    with pytest.raises(ValueError, match="device takes host"):
        resmagic.top(device="banana")


@pytest.mark.parametrize(
    ("given", "ranked"),
    [
        ("host", "host"),
        ("1", "cuda:1"),
        (1, "cuda:1"),
        ("cuda:0.nvml", "cuda:0.nvml"),
        ("cuda:01", "cuda:1"),
        ("rank 1", "rank 1"),  # review: the rank rows top ranks (docs/store.md)
        ("rank 02 cuda:0.nvml", "rank 2 cuda:0.nvml"),
    ],
)
def test_top_takes_the_devices_it_ranks(given: object, ranked: str) -> None:
    from resmagic.store import ranked_device

    assert ranked_device(given) == ranked


def test_top_with_the_store_off_says_so(
    ip: Any, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.store = ""
    assert ip.run_line_magic("resmagic", "top") is None
    assert "the run store is off" in capsys.readouterr().out


def test_top_and_the_mlflow_top_cells_artifact_rank_a_session_alike(ip: Any, store: Path) -> None:
    # issue 27 item 3: one ranking for the notebook and for MLflow (resmagic.topcells)
    from resmagic.bus import subscribe
    from resmagic.cellfigures import fold
    from resmagic.topcells import top_cells

    published: list[Any] = []  # not a slice of history(): at its limit its length stays put
    unsubscribe = subscribe(published.append)
    try:
        # Each above glibc's largest mmap threshold (32 MiB): fresh pages however much heap
        # earlier tests freed (an 8 MiB cell reused it and never rose after a 25,000-report one).
        for name, mib in (("t1_", 40), ("t2_", 72), ("t3_", 56)):
            _alloc(ip, name, mib, keep=False)
    finally:
        unsubscribe()
    runs: dict[object, Any] = {}
    for report in published:  # as the sink folds them: by cell number
        runs[report.cell] = fold(runs.get(report.cell), report)
    artifact = [row["cell"] for row in top_cells(runs.values())["peak"]["host"]]
    shown = ip.run_line_magic("resmagic", "top --session this --device host")
    assert [row["cell"] for row in shown.rows] == artifact
    assert len(artifact) == 3
