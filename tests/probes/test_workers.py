"""Child processes' memory: real forked children and a real DataLoader, synchronised by pipes.

Each child allocates and touches 100 MiB after the fork, says so on a pipe, and holds it until
the parent writes back: no sleeps, so a loaded machine only makes the test slower.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import pytest

from resmagic import gpu_scope
from resmagic.probes import workers
from resmagic.probes.reading import DeviceMemory
from resmagic.report import GpuReport
from tests.children import HELD, MiB, holding_children


def _report(scope: gpu_scope) -> GpuReport:
    report = scope.report
    assert report is not None
    return report


def test_children_still_holding_at_the_end_are_measured_exactly() -> None:
    # The children are released after the scope has closed: they hold at its end.
    with ExitStack() as held, gpu_scope("host") as scope:
        pids = held.enter_context(holding_children(2))
        assert set(pids) <= set(workers.pids())
    row = _report(scope).device("workers")
    assert row.source == "USS"
    assert row.before_bytes == 0
    assert 2 * HELD <= row.after_bytes <= 2 * HELD * 1.05
    assert 2 * HELD <= row.peak_bytes <= 2 * HELD * 1.05
    # The host row is this process alone: the children's memory is not in it.
    host = _report(scope).device("host")
    assert host.peak_bytes - host.before_bytes < 10 * MiB


def test_children_gone_by_the_end_leave_their_sampled_peak() -> None:
    seen = threading.Event()

    def listener(now: float, readings: Sequence[DeviceMemory]) -> None:
        if any(r.name == "workers" and r.used_bytes >= 2 * HELD for r in readings):
            seen.set()

    scope = gpu_scope("host")
    scope.follow(listener)
    with scope, holding_children(2):
        assert seen.wait(120), "the sampler never saw both children holding their memory"
    row = _report(scope).device("workers")
    assert row.after_bytes == 0
    assert not row.peak_exact
    # Forked from this process, each child's RSS also counts every page it shares with it;
    # the peak counts what the children hold themselves.
    assert 2 * HELD <= row.peak_bytes <= 2 * HELD * 1.05


def test_a_block_without_children_has_no_workers_row() -> None:
    with gpu_scope("host") as scope:
        pass
    assert [d.name for d in _report(scope).devices if d.name == "workers"] == []


class _Holding:
    """A dataset whose worker holds ``HELD`` bytes from its first item on."""

    held: bytearray | None = None

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> int:
        if _Holding.held is None:
            _Holding.held = bytearray(b"x") * HELD
        return index


def test_a_dataloaders_workers_show_as_a_workers_row() -> None:
    torch_data = pytest.importorskip("torch.utils.data")
    loader = torch_data.DataLoader(_Holding(), batch_size=1, num_workers=2)
    with gpu_scope("host") as scope:
        batches = iter(loader)
        first = [int(next(batches)) for _ in range(2)]  # one item from each worker
    del batches
    assert first == [0, 1]
    row = _report(scope).device("workers")
    assert row.source == "USS"
    assert row.after_bytes >= 2 * HELD  # each worker's own pages, not the shared ones
    assert row.peak_bytes >= row.after_bytes


_CHILDREN_SEEN = """
import json, subprocess, time
from resmagic.probes import workers
seen = [(workers._has_children(), workers.pids())]
child = subprocess.Popen(["sleep", "30"])
seen.append((workers._has_children(), workers.pids()))
child.kill()
while open(f"/proc/{child.pid}/stat").read().split(") ")[1][0] != "Z":
    time.sleep(0.01)  # a zombie until reaped: still a child
seen.append((workers._has_children(), workers.pids()))
child.wait()
seen.append((workers._has_children(), workers.pids()))
print(json.dumps({"pid": child.pid, "seen": seen}))
"""


def test_children_are_listed_exactly_when_waitid_says_there_are_some() -> None:
    # The threads' children files are read only when one waitid (no wait, no reap) says
    # this process has a child (issue 26): running and not-yet-reaped children both count.
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _CHILDREN_SEEN], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    pid = result["pid"]
    assert result["seen"] == [[False, []], [True, [pid]], [True, [pid]], [False, []]]


def test_file_pages_a_child_takes_after_its_first_read_are_shared_not_its_own(
    tmp_path: Path,
) -> None:
    """Fork copies no page of a file mapping: the child takes its parent's pages as it runs.

    Counted as its own (RSS less what it shared at its first read), they made a forked rank's
    sampled peak 12 MiB over what it held, on a loaded machine.
    """
    data = tmp_path / "shared.bin"
    data.write_bytes(b"\1" * HELD)
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    with open(data, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as pages:
        assert sum(pages[i] for i in range(0, HELD, 4096)) == HELD // 4096  # resident here
        pid = os.fork()
        if pid == 0:  # the child: no page of the mapping yet; take them all when told
            os.read(go_r, 1)
            total = sum(pages[i] for i in range(0, HELD, 4096))
            os.write(done_w, b"d" if total == HELD // 4096 else b"x")
            os.read(go_r, 1)
            os._exit(0)
        try:
            before = workers.estimates([pid])[pid]  # its first read
            os.write(go_w, b"g")
            assert os.read(done_r, 1) == b"d"
            after = workers.estimates([pid])[pid]
            exact = workers.unique(pid)
        finally:
            os.write(go_w, b"g")
            os.waitpid(pid, 0)
            for fd in (go_r, go_w, done_r, done_w):
                os.close(fd)
    assert exact is not None
    assert after - before < 8 * MiB  # the 100 MiB it took are its parent's too
    assert abs(after - exact) < 8 * MiB
