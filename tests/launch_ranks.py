"""A stand-in kernel that launches two ranks and reads them, for tests/probes/test_launched.py.

``python tests/launch_ranks.py kernel HOW DIR`` plays the kernel: it launches two ranks the
way ``HOW`` says (``torchrun`` through a shell, as ``!torchrun`` in a cell; ``spawn`` and
``fork`` through ``torch.multiprocessing``; ``children`` forks two plain children, no launch),
waits until each holds its memory, prints what :mod:`resmagic.probes.launched` sees as one
JSON line, lets them go and waits for them. A process of its own, so the test process gets no
children (a spawn launch leaves multiprocessing's resource tracker behind for good).
``python tests/launch_ranks.py rank DIR`` is one rank under torchrun.

Rank ``i`` holds ``(i + 1) * STEP`` bytes, creates ``DIR/ready-i`` and waits for ``DIR/go``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resmagic.probes import launched

MiB = 1 << 20
STEP = 40 * MiB


def hold(index: int, directory: str) -> None:
    """Hold ``(index + 1) * STEP`` bytes until ``directory/go`` exists."""
    held = bytearray(b"x") * ((index + 1) * STEP)
    Path(directory, f"ready-{index}").touch()
    go = Path(directory, "go")
    while not go.exists():  # the kernel creates it once it has read us
        time.sleep(0.02)
    del held


def wait_ready(directory: Path, alive: Callable[[], bool]) -> None:
    """Until both ranks hold their memory; fails if a rank ends first."""
    while sum(1 for _ in directory.glob("ready-*")) < 2:
        if not alive():
            sys.exit("a rank ended before it was ready")
        time.sleep(0.02)


@contextmanager
def launch(how: str, directory: Path) -> Iterator[None]:
    """Two ranks launched ``how``, holding until the block ends."""
    if how == "torchrun":
        cmd = f"{sys.executable} -m torch.distributed.run --nproc_per_node=2 {__file__} rank"
        shell = subprocess.Popen(f"{cmd} {directory}", shell=True)
        wait_ready(directory, lambda: shell.poll() is None)
        yield
        (directory / "go").touch()
        shell.wait()
        return
    if how == "children":
        pids = []
        for index in range(2):
            pid = os.fork()
            if pid == 0:  # the child
                hold(index, str(directory))
                os._exit(0)
            pids.append(pid)
        wait_ready(directory, lambda: True)
        yield
        (directory / "go").touch()
        for pid in pids:
            os.waitpid(pid, 0)
        return
    from torch.multiprocessing.spawn import start_processes

    context: Any = start_processes(  # type: ignore[no-untyped-call]
        hold, args=(str(directory),), nprocs=2, join=False, start_method=how
    )
    wait_ready(directory, lambda: all(p.is_alive() for p in context.processes))
    yield
    (directory / "go").touch()
    while not context.join():
        pass


def kernel(how: str, directory: Path) -> None:
    """Launch, read the ranks while they hold, print what was seen."""
    with launch(how, directory):
        found = launched.find()
        rows = launched.read(found)
    seen = {
        "ranks": [[r.rank, r.named_by] for r in found],
        "rows": [[row.name, row.used_bytes] for row in rows],
    }
    print("SEEN " + json.dumps(seen), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "rank":
        hold(int(os.environ["LOCAL_RANK"]), sys.argv[2])
    else:
        kernel(sys.argv[2], Path(sys.argv[3]))
