"""A ``%%gpu_scope`` cell that spawns ranks, in a real kernel: a row per rank (issue 28 item 2).

The ranks are ``torch.multiprocessing`` spawn children (``spawn_main``) running
``tests/launch_ranks.py:hold``: rank ``i`` holds ``(i + 1) * STEP`` bytes until the test lets
it go, so both are alive when the cell ends and their rows are exact (``smaps_rollup``).
One kernel, one launch: ~10 s here (the kernel and each rank import torch).
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.kernel import Kernel
from tests.launch_ranks import STEP

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(find_spec("torch") is None, reason="needs torch")

LAUNCH = """\
%%gpu_scope host --no-panel
import pathlib, sys, time
sys.path.insert(0, {root!r})
from torch.multiprocessing import start_processes
from tests.launch_ranks import hold
ranks = start_processes(hold, args=({dir!r},), nprocs=2, start_method="spawn", join=False)
while len(list(pathlib.Path({dir!r}).glob("ready-*"))) < 2:
    assert all(p.is_alive() for p in ranks.processes), "a rank ended before it was ready"
    time.sleep(0.02)
"""

RELEASE = """\
pathlib.Path({dir!r}, "go").touch()
while not ranks.join():
    pass
"""

ROWS = "[(d.name, d.source, d.after_bytes) for d in __import__('resmagic').history()[-1].devices]"


def test_a_cell_that_spawns_two_ranks_shows_a_row_per_rank_not_in_the_workers_row(
    tmp_path: Path,
) -> None:
    with Kernel(cwd=str(ROOT)) as kernel:
        assert kernel.run("%load_ext resmagic").status == "ok"
        try:
            launch = kernel.run(LAUNCH.format(root=str(ROOT), dir=str(tmp_path)), timeout=180)
        finally:
            released = kernel.run(RELEASE.format(dir=str(tmp_path)), timeout=120)
        assert launch.status == "ok", launch.error
        assert released.status == "ok", released.error
        rows = {name: (source, after) for name, source, after in kernel.value(ROWS)}
        assert "rank 0" in launch.report_text
        assert "rank 1" in launch.report_text
    # The workers row keeps the other children (the resource tracker: a few MiB), never the
    # ranks: no sum counts them again.
    assert rows.get("workers", ("USS", 0))[1] < STEP
    (zero_source, zero), (one_source, one) = rows["rank 0"], rows["rank 1"]
    assert (zero_source, one_source) == ("USS", "USS")
    # Each row is the whole rank process's own memory (its interpreter, torch); rank 1
    # holds STEP bytes more than rank 0.
    assert abs((one - zero) - STEP) <= 0.05 * STEP, (zero, one)
