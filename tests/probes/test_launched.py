"""Ranks a cell launches, told apart from other children: torchrun, spawn and fork launchers.

This test process plays the kernel: it launches two real ranks, each holding a known amount
(rank i: (i + 1) x 40 MiB), and reads them while they hold.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from resmagic.probes import launched
from tests.children import holding_children
from tests.launch_ranks import STEP, hold

MiB = 1 << 20


def wait_ready(directory: Path, count: int, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 90  # a guard against a hang, not a measurement
    while sum(1 for _ in directory.glob("ready-*")) < count:
        assert alive(), "a rank ended before it was ready"
        assert time.monotonic() < deadline, "ranks not ready"
        time.sleep(0.02)


@contextmanager
def torch_launched(directory: Path, start_method: str) -> Iterator[None]:
    """Two ranks started by torch.multiprocessing in ``start_method``, holding until the end."""
    from torch.multiprocessing.spawn import start_processes

    context: Any = start_processes(  # type: ignore[no-untyped-call]
        hold, args=(str(directory),), nprocs=2, join=False, start_method=start_method
    )
    try:
        wait_ready(directory, 2, lambda: all(p.is_alive() for p in context.processes))
        yield
    finally:
        (directory / "go").touch()
        while not context.join(timeout=30):
            pass


def assert_rank_rows(found: list[launched.LaunchedRank], named_by: str) -> None:
    assert [(r.rank, r.named_by) for r in found] == [(0, named_by), (1, named_by)]
    rows = launched.read(found)
    assert [row.name for row in rows] == ["rank 0", "rank 1"]
    for rank, row in enumerate(rows):  # what each rank holds, of its own
        assert row.used_bytes >= (rank + 1) * STEP
    assert rows[1].used_bytes - rows[0].used_bytes >= STEP * 0.9


def test_torchrun_workers_are_ranks_by_their_environment(tmp_path: Path) -> None:
    script = Path(__file__).parent.parent / "launch_ranks.py"
    cmd = f"{sys.executable} -m torch.distributed.run --nproc_per_node=2 {script} {tmp_path}"
    shell = subprocess.Popen(cmd, shell=True)  # as `!torchrun ...` runs it from a cell
    try:
        wait_ready(tmp_path, 2, lambda: shell.poll() is None)
        assert_rank_rows(launched.find(), launched.ENVIRONMENT)
    finally:
        (tmp_path / "go").touch()
        shell.wait(timeout=60)


def test_spawned_ranks_are_numbered_by_start_order(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    with torch_launched(tmp_path, "spawn"):
        assert_rank_rows(launched.find(), launched.START_ORDER)


def test_forked_ranks_are_numbered_by_start_order_during_a_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    monkeypatch.setenv("WORLD_SIZE", "2")  # as accelerate's notebook_launcher sets it
    with torch_launched(tmp_path, "fork"):
        assert_rank_rows(launched.find(), launched.START_ORDER)


def test_forked_children_outside_a_launch_are_not_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    with holding_children(2):
        assert launched.find() == []
