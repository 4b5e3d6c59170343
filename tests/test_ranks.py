"""resmagic.ranks on real gloo groups: two rank processes on 127.0.0.1 per test, no mocks.

The ranks run ``tests/ranks_worker.py``, started three ways: as plain processes with
torchrun's environment (so a rank may die without a launcher killing the others), by
``torchrun`` itself, and by ``torch.multiprocessing.spawn``.
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

# The ranks import torch, in processes of their own; this one need not.
pytestmark = pytest.mark.skipif(find_spec("torch") is None, reason="needs torch")

WORKER = Path(__file__).with_name("ranks_worker.py")
ROOT = WORKER.parent.parent
MiB = 1 << 20


def free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def result_of(out: str) -> Any:
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert lines, f"rank 0 printed no result:\n{out}"
    return json.loads(lines[-1].removeprefix("RESULT "))


def two_ranks(scenario: str) -> Any:
    """Rank 0's result of ``scenario``, its two ranks started as torchrun would start them."""
    port = free_port()
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2"}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), scenario],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        outs = [p.communicate(timeout=90)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    return result_of(outs[0])


def launched(argv: list[str]) -> Any:
    done = subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return result_of(done.stdout)


def test_rank_that_raised_is_reported_with_its_error() -> None:
    table = two_ranks("raised")
    zero, one = table["rows"]
    assert (zero["rank"], zero["status"], zero["error"]) == (0, "ok", None)
    assert (one["rank"], one["status"], one["error"]) == (1, "error", "ValueError: boom on rank 1")


def test_late_rank_is_missing_and_the_users_group_still_works() -> None:
    result = two_ranks("late")
    one = result["first"]["rows"][1]
    assert one["rank"] == 1
    assert "no record within 1 s" in one["missing"]
    assert result["all_reduce"] == 1 + 2  # the user's next collective: no stray message in it
    assert [row["status"] for row in result["second"]["rows"]] == ["ok", "ok"]


def test_scope_only_some_ranks_open_leaves_other_tags_whole() -> None:
    result = two_ranks("skipped")
    assert "no record within 1 s" in result["eval"]["rows"][1]["missing"]
    assert [row["status"] for row in result["train"]["rows"]] == ["ok", "ok"]


def test_dead_rank_is_missing_not_a_hang() -> None:
    table = two_ranks("dead")
    assert table["rows"][0]["status"] == "ok"
    assert table["rows"][1]["rank"] == 1
    assert "no record within 1 s" in table["rows"][1]["missing"]


def test_ctrl_c_while_waiting_ends_the_wait_and_says_so() -> None:
    table = two_ranks("interrupted")  # the wait's timeout is 600 s: only Ctrl-C ends it
    assert table["interrupted"] is True
    assert table["rows"][1]["missing"] == "not waited for (interrupted)"


def check_truth(table: Any) -> None:
    """Rank 1 holds 200 MiB more: it is the peak, and each row is within 5 % of the truth."""
    assert table["peak"][0] == 1
    for row in table["rows"]:
        before, peak = row["host"]
        truth = (50 + 200 * row["rank"]) * MiB
        assert abs((peak - before) - truth) <= 0.05 * truth, (row["rank"], peak - before, truth)


def test_torchrun_table_names_rank_that_allocated_most() -> None:
    argv = ["-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
    check_truth(launched([*argv, f"--master_port={free_port()}", str(WORKER), "truth"]))


def test_spawn_table_names_rank_that_allocated_most() -> None:
    check_truth(launched([str(WORKER), "spawn", "truth", free_port()]))


def test_no_group_means_no_gather_and_no_torch_import() -> None:
    code = (
        "import sys; from resmagic import ranks; "
        "print(ranks.gather(ranks.RankRecord(0, 'ok', 1.0)), 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.split() == ["None", "False"], done.stderr


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "30"])
def test_timeout_that_is_not_a_positive_number_is_refused(bad: Any) -> None:
    with pytest.raises(OptionError, match="timeout_s must be a positive number"):
        ranks.gather(ranks.RankRecord(0, "ok", 1.0), timeout_s=bad)


def test_record_crosses_the_store_unchanged() -> None:
    device = ranks.DevicePeak("cuda:0", "torch allocator", 1, 2 << 30, True)
    record = ranks.RankRecord(1, "error", 2.5, "OSError: é", (device,), 42, "node-1")
    assert ranks._decode(1, ranks._encode(record)) == record


def test_unreadable_record_is_missing_with_why() -> None:
    row = ranks._decode(1, b"not json")
    assert isinstance(row, ranks.Missing)
    assert row.reason.startswith("unreadable record")


def test_table_peak_names_the_rank_and_skips_missing_ranks() -> None:
    def rec(rank: int, host: int, gpu_exact: int, gpu_nvml: int) -> ranks.RankRecord:
        devices = (
            ranks.DevicePeak("host", "RSS", 0, host, True),
            ranks.DevicePeak("cuda:0", "torch allocator", 0, gpu_exact, True),
            ranks.DevicePeak("cuda:0", "NVML", 0, gpu_nvml, False),
        )
        return ranks.RankRecord(rank, "ok", 1.0, None, devices)

    table = ranks.RankTable((rec(0, 5, 10, 99), ranks.Missing(1, "late"), rec(2, 7, 20, 21)))
    assert table.peak("host") == (2, 7)
    assert table.peak("cuda") == (2, 20)  # the allocator's exact figure, not NVML's
    assert table.peak("workers") is None
    assert [m.rank for m in table.missing] == [1]
