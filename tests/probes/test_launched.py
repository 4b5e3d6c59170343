"""Ranks a cell launches, told apart from other children: torchrun, spawn and fork launchers.

A stand-in kernel (``tests/launch_ranks.py``, a process of its own) launches two real ranks,
rank i holding (i + 1) x 40 MiB, and reads them with resmagic.probes.launched while they hold:
a ``workers`` row for the other children, a ``rank N`` row per rank, and with NVML (the fake
GPU seam: no GPU here) a ``rank N cuda:0`` row from NVML's per-process list.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from resmagic.probes import launched
from tests.launch_ranks import HELPER, STEP, GiB

KERNEL = Path(__file__).parent.parent / "launch_ranks.py"


def seen_by_kernel(how: str, directory: Path, *args: str, **env: str) -> Any:
    """What the stand-in kernel saw of the ranks it launched ``how``."""
    done = subprocess.run(
        [sys.executable, str(KERNEL), "kernel", how, str(directory), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_environment(), **env},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("SEEN ")]
    assert lines, done.stdout + done.stderr
    return json.loads(lines[-1].removeprefix("SEEN "))


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}


def rows_by_name(seen: Any) -> dict[str, int]:
    return {name: used for name, _, used in seen["rows"]}


def assert_two_ranks(seen: Any, named_by: str) -> None:
    assert seen["ranks"] == [[0, named_by], [1, named_by]]
    assert seen["pids"] is True  # each rank is the process that says it holds its memory
    used = rows_by_name(seen)
    assert [name for name, _, _ in seen["rows"]][:3] == ["workers", "rank 0", "rank 1"]
    assert used["rank 0"] >= STEP  # each rank's unique memory holds what it allocated
    assert used["rank 1"] >= 2 * STEP
    assert used["rank 1"] - used["rank 0"] >= 0.9 * STEP


def test_torchrun_workers_are_ranks_by_their_environment(tmp_path: Path) -> None:
    seen = seen_by_kernel("torchrun", tmp_path)
    assert_two_ranks(seen, launched.ENVIRONMENT)
    # The shell and torchrun's agent (which imports torch) stay in workers, the ranks do not.
    assert rows_by_name(seen)["workers"] > 0


def test_a_torchrun_ranks_own_child_is_no_rank_and_counts_once_in_workers(
    tmp_path: Path,
) -> None:
    # Each rank starts a child holding HELPER bytes; the child inherits the rank's RANK.
    seen = seen_by_kernel("torchrun-helper", tmp_path)
    assert_two_ranks(seen, launched.ENVIRONMENT)  # one row per rank: its own process
    used = rows_by_name(seen)
    assert used["rank 0"] < HELPER  # the rank's row is not its child's memory
    assert used["workers"] >= 2 * HELPER  # both children, in workers


def test_forked_ranks_are_numbered_by_start_order_during_a_launch(tmp_path: Path) -> None:
    # WORLD_SIZE: as accelerate's notebook_launcher and debug_launcher set it for the launch.
    seen = seen_by_kernel("fork", tmp_path, WORLD_SIZE="2")
    assert_two_ranks(seen, launched.START_ORDER)


def test_forked_children_outside_a_launch_are_workers(tmp_path: Path) -> None:
    seen = seen_by_kernel("children", tmp_path)
    assert seen["ranks"] == []
    assert [name for name, _, _ in seen["rows"]] == ["workers"]
    assert rows_by_name(seen)["workers"] >= 3 * STEP  # both children, in workers


def test_each_ranks_gpu_memory_is_nvmls_figure_for_its_process(tmp_path: Path) -> None:
    seen = seen_by_kernel("children", tmp_path, "fake-nvml", WORLD_SIZE="2")
    assert_two_ranks(seen, launched.START_ORDER)
    gpu = {name: (source, used) for name, source, used in seen["rows"] if "cuda" in name}
    # The GPU's third process (pid 1) is no rank of ours: no row.
    assert gpu == {"rank 0 cuda:0": ("NVML", GiB), "rank 1 cuda:0": ("NVML", 2 * GiB)}
    assert all("cuda" not in name for name in seen["host_only"])  # gpu_scope("host")


def test_rank_row_names() -> None:
    assert (launched.rank_row(3), launched.rank_row(3, "cuda:1")) == ("rank 3", "rank 3 cuda:1")
    assert launched.is_rank_row("rank 3 cuda:1")
    assert not launched.is_rank_row("workers")
