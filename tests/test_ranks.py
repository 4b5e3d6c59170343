"""gpu_scope(ranks=True) and timed(ranks=True) on real gloo groups: two rank processes, no mocks.

The ranks run ``tests/ranks_worker.py``: once as two plain processes with torchrun's
environment (so a rank may die without a launcher killing the others), playing every
scenario in one group (one start of two processes for the module), and once under
``torchrun`` itself. resmagic.ranks's own parts (the wire form, the timeout's check, a
gather without a group) are tested in this process, which never imports torch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from resmagic import ranks
from resmagic.errors import OptionError
from resmagic.ranktable import RankDevice, RankRow

# The ranks import torch, in processes of their own; this one need not.
needs_torch = pytest.mark.skipif(find_spec("torch") is None, reason="needs torch")

WORKER = Path(__file__).with_name("ranks_worker.py")
ROOT = WORKER.parent.parent
MiB = 1 << 20
SCENARIOS = ["truth", "raised", "timing", "skipped", "late", "forked", "interrupted", "dead"]


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def result_of(out: str) -> Any:
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert lines, f"rank 0 printed no result:\n{out}"
    return json.loads(lines[-1].removeprefix("RESULT "))


@pytest.fixture(scope="module")
def played() -> Any:
    """Rank 0's results of every scenario, its two ranks started as torchrun would start them."""
    return play(SCENARIOS)


def play(scenarios: list[str]) -> Any:
    """Rank 0's results of ``scenarios``, played by two plain processes with torchrun's env."""
    port, store_port = free_port(), free_port()
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2"}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, TEST_STORE_PORT=store_port)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), *scenarios],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        outs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    return result_of(outs[0])


def check_truth(table: Any) -> None:
    """Rank 1 holds 200 MiB more: it is the peak, and each row is within 5 % of the truth."""
    assert table["rank"] == 0
    assert table["peak"][0] == 1
    assert [row["rank"] for row in table["rows"]] == [0, 1]
    for row in table["rows"]:
        before, peak = row["host"]
        truth = (50 + 200 * row["rank"]) * MiB
        assert abs((peak - before) - truth) <= 0.05 * truth, (row["rank"], peak - before, truth)


@needs_torch
def test_rank_zeros_report_names_the_rank_that_allocated_most(played: Any) -> None:
    check_truth(played["truth"])


@needs_torch
def test_rank_that_raised_is_reported_with_its_error(played: Any) -> None:
    zero, one = played["raised"]["rows"]
    assert (zero["rank"], zero["status"], zero["error"]) == (0, "ok", None)
    assert (one["rank"], one["status"], one["error"]) == (1, "error", "ValueError: boom on rank 1")


@needs_torch
def test_timed_ranks_carry_each_ranks_wall_time(played: Any) -> None:
    table = played["timing"]["table"]
    zero, one = table["rows"]
    assert (zero["status"], one["status"]) == ("ok", "ok")
    assert one["wall"] >= 0.2  # rank 1 slept 0.2 s inside its block
    assert "ranks 2 of 2" in played["timing"]["summary"]


@needs_torch
def test_scope_only_some_ranks_open_leaves_other_tags_whole(played: Any) -> None:
    one = played["skipped"]["eval"]["rows"][1]
    assert one["status"] == "missing"
    assert "no record within 1 s" in one["error"]
    assert [row["status"] for row in played["skipped"]["train"]["rows"]] == ["ok", "ok"]


@needs_torch
def test_late_rank_is_missing_and_the_users_group_still_works(played: Any) -> None:
    result = played["late"]
    one = result["first"]["rows"][1]
    assert (one["rank"], one["status"]) == (1, "missing")
    assert "no record within 1 s" in one["error"]
    assert result["all_reduce"] == 1 + 2  # the user's next collective: no stray message in it
    assert [row["status"] for row in result["second"]["rows"]] == ["ok", "ok"]


@needs_torch
def test_forked_child_of_a_rank_gathers_nothing_and_leaves_the_ranks_store_whole(
    played: Any,
) -> None:
    result = played["forked"]
    assert result["children_gathered"] == ["0", "0"]  # rank 0's child, then rank 1's
    assert [row["status"] for row in result["after"]["rows"]] == ["ok", "ok"]


@needs_torch
def test_ctrl_c_while_waiting_publishes_the_report_then_raises(played: Any) -> None:
    result = played["interrupted"]  # the wait's timeout is 600 s: only Ctrl-C ends it
    assert result["raised"] is True
    assert result["published"] is True
    assert result["table"]["interrupted"] is True
    assert result["table"]["rows"][1]["error"] == "not waited for (interrupted)"


@needs_torch
def test_dead_rank_is_missing_not_a_hang(played: Any) -> None:
    table = played["dead"]
    assert table["rows"][0]["status"] == "ok"
    assert (table["rows"][1]["rank"], table["rows"][1]["status"]) == (1, "missing")
    assert "no record within 1 s" in table["rows"][1]["error"]


@needs_torch
def test_destroyed_group_frees_rank_zeros_port_for_the_next_group() -> None:
    result = play(["destroyed"])["destroyed"]
    assert [row["status"] for row in result["table"]["rows"]] == ["ok", "ok"]
    assert result["port"] == "free"


@needs_torch
def test_late_record_of_a_destroyed_group_is_not_read_as_the_next_groups() -> None:
    first, second = play(["regroup"])["regroup"]  # a store that outlives each group
    assert first["rows"][1]["status"] == "missing"
    assert second["rows"][1]["status"] == "missing", second["rows"][1]  # not the late "error"
    assert "no record within 1 s" in second["rows"][1]["error"]


@needs_torch
def test_torchrun_rank_zeros_report_names_the_rank_that_allocated_most() -> None:
    argv = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    argv += [f"--master_port={free_port()}", str(WORKER), "truth"]
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    check_truth(result_of(done.stdout)["truth"])


def test_no_group_means_no_gather_no_error_and_no_torch_import() -> None:
    code = (
        "import sys; from resmagic import gpu_scope, timed\n"
        "with gpu_scope('host', ranks=True) as g, timed(ranks=True) as t: pass\n"
        "print(g.report.ranks, t.report.ranks, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.split() == ["None", "None", "False"], done.stderr


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "30", True])
def test_timeout_that_is_not_a_positive_number_is_refused(bad: Any) -> None:
    with pytest.raises(OptionError, match="ranks timeout must be a positive number"):
        ranks.gather(RankRow(0, "ok", 1.0), timeout_s=bad)


@pytest.mark.parametrize("pid", [42, None])
def test_record_crosses_the_store_unchanged(pid: int | None) -> None:
    device = RankDevice("cuda:0", "torch allocator", 1, 2 << 30, 3, None, True)
    row = RankRow(1, "error", 2.5, "OSError: é", (device,), pid, "node-1")
    assert ranks._decode(1, ranks._encode(row)) == row  # a row made without a pid too


@pytest.mark.parametrize("raw", [b"not json", b'["missing", 1.0, null, [], 1, "h"]', b"[1, 2]"])
def test_unreadable_record_is_missing_with_why(raw: bytes) -> None:
    row = ranks._decode(1, raw)
    assert row.status == "missing"
    assert row.error is not None
    assert row.error.startswith("unreadable record")
