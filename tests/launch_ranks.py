"""A stand-in kernel that launches two ranks and reads them, for tests/probes/test_launched.py.

``python tests/launch_ranks.py kernel HOW DIR [fake-nvml]`` plays the kernel: it launches two
ranks the way ``HOW`` says (``torchrun`` through a shell, as ``!torchrun`` in a cell;
``fork`` as ``torch.multiprocessing``'s fork launcher does; ``children`` forks two plain
children, no launch), waits until each holds its memory, prints what
:mod:`resmagic.probes.launched` sees as one JSON line, lets them go and waits for them. A
process of its own, so the test process gets no children. (Spawned ranks are tested in a
real kernel: tests/ipython/test_ranks_cell.py.) ``fake-nvml``: the GPU seam says each
rank holds ``(rank + 1)`` GiB on one GPU (the only fake: no GPU here).
``python tests/launch_ranks.py rank DIR [helper]`` is one rank under torchrun; ``helper``:
it first starts a child, as a DataLoader worker, which inherits its ``RANK`` and holds
``HELPER`` bytes (HOW ``torchrun-helper``).

Rank ``i`` holds ``(i + 1) * STEP`` bytes, creates ``DIR/ready-i`` and waits for ``DIR/go``.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resmagic.probes import launched, nvml, workers

MiB = 1 << 20
GiB = 1 << 30
STEP = 40 * MiB
HELPER = 3 * STEP


def hold(index: int, directory: str) -> None:
    """Hold ``(index + 1) * STEP`` bytes until ``directory/go`` exists."""
    held = bytearray(b"x") * ((index + 1) * STEP)
    # Written whole, then renamed: the kernel reads the pid as soon as the name is there.
    Path(directory, f"pid-{index}").write_text(str(os.getpid()))
    Path(directory, f"pid-{index}").rename(Path(directory, f"ready-{index}"))
    go = Path(directory, "go")
    while not go.exists():  # the kernel creates it once it has read us
        time.sleep(0.02)
    del held


def helper(directory: str) -> subprocess.Popen[bytes]:
    """A child of this rank holding ``HELPER`` bytes until ``directory/go`` exists."""
    go = str(Path(directory, "go"))
    code = (
        f"import os, time\nheld = bytearray(b'x') * {HELPER}\nprint(flush=True)\n"
        f"while not os.path.exists({go!r}): time.sleep(0.02)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None
    child.stdout.readline()  # it holds its bytes
    return child


def wait_ready(directory: Path, alive: Callable[[], bool]) -> dict[int, int]:
    """Until both ranks hold their memory (fails if one ends first); their pids by index."""
    while sum(1 for _ in directory.glob("ready-*")) < 2:
        if not alive():
            sys.exit("a rank ended before it was ready")
        time.sleep(0.02)
    return {i: int(Path(directory, f"ready-{i}").read_text()) for i in (0, 1)}


@contextmanager
def launch(how: str, directory: Path) -> Iterator[dict[int, int]]:
    """Two ranks launched ``how``, holding until the block ends; their pids by index."""
    if how.startswith("torchrun"):
        cmd = f"{sys.executable} -m torch.distributed.run --nproc_per_node=2 {__file__} rank"
        extra = " helper" if how == "torchrun-helper" else ""
        shell = subprocess.Popen(f"{cmd} {directory}{extra}", shell=True)
        try:
            yield wait_ready(directory, lambda: shell.poll() is None)
        finally:
            (directory / "go").touch()  # also on a failure: no rank holds the test's pipes
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
        try:
            yield wait_ready(directory, lambda: True)
        finally:
            (directory / "go").touch()
            for pid in pids:
                os.waitpid(pid, 0)
        return
    # "fork": what torch.multiprocessing.start_processes(start_method="fork") does (the
    # launcher under notebook_launcher's elastic_launch), without importing torch (~4 s
    # here): a multiprocessing fork context's Process per rank, started in rank order.
    context = multiprocessing.get_context("fork")
    procs = [context.Process(target=hold, args=(i, str(directory))) for i in range(2)]
    for proc in procs:
        proc.start()
    try:
        yield wait_ready(directory, lambda: all(p.is_alive() for p in procs))
    finally:
        (directory / "go").touch()
        for proc in procs:
            proc.join()


def fake_gpu(pids: dict[int, int]) -> None:
    """One fake GPU on which rank ``i`` holds ``(i + 1)`` GiB, as NVML would list it."""
    from tests.fakes import FakeNvml

    fake = FakeNvml(uuids=["GPU-00000000-aaaa-bbbb-cccc-000000000000"])
    fake.devices[0].processes = {pid: (i + 1) * GiB for i, pid in pids.items()}
    fake.devices[0].processes[1] = 5 * GiB  # another process on the GPU: not a rank
    nvml.backend = fake
    nvml.reset()


def kernel(how: str, directory: Path, gpu: bool) -> None:
    """Launch, read the ranks while they hold, print what was seen."""
    with launch(how, directory) as pids:
        if gpu:
            fake_gpu(pids)
        own, alive = workers.listing()
        found = launched.find(own, alive)
        rows = launched.read(lambda index: True, exact=True)
        host_only = launched.read(lambda index: False, exact=True)
    seen = {
        "ranks": [[r.rank, r.named_by] for r in found],
        "pids": [r.pid for r in found] == [pids[0], pids[1]],
        "rows": [[row.name, row.source, row.used_bytes] for row in rows],
        "host_only": [row.name for row in host_only],
    }
    print("SEEN " + json.dumps(seen), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "rank":
        child = helper(sys.argv[2]) if sys.argv[3:] == ["helper"] else None
        hold(int(os.environ["LOCAL_RANK"]), sys.argv[2])
        if child is not None:
            child.wait()
    else:
        kernel(sys.argv[2], Path(sys.argv[3]), sys.argv[4:] == ["fake-nvml"])
