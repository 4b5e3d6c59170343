"""One rank of a real gloo group on 127.0.0.1, for tests/test_ranks.py (not a test module).

``python tests/ranks_worker.py SCENARIO`` with torchrun's environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), or ``python tests/ranks_worker.py spawn
SCENARIO PORT`` to start two ranks with ``torch.multiprocessing.spawn``. Rank 0 prints its
result as one JSON line, prefixed ``RESULT ``. Ranks wait for each other through the group's
store, never through sleeps, so each scenario plays out the same way on a loaded machine.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch.distributed as dist

from resmagic import gpu_scope, ranks

MiB = 1 << 20
TIMEOUT_S = 1.0  # short: the scenarios that wait for it have a rank that will never write
BASE_MIB = 50
EXTRA_MIB = 200  # rank 1 allocates this much more than rank 0


def table_json(table: ranks.RankTable | None) -> Any:
    """The table as plain JSON: a list of rows, each a dict."""
    if table is None:
        return None
    rows: list[dict[str, Any]] = []
    for row in table.rows:
        if isinstance(row, ranks.Missing):
            rows.append({"rank": row.rank, "missing": row.reason})
        else:
            devices = {d.name: [d.before_bytes, d.peak_bytes] for d in row.devices}
            rows.append({"rank": row.rank, "status": row.status, "error": row.error, **devices})
    return {"rows": rows, "interrupted": table.interrupted, "peak": table.peak("host")}


def touch(size: int) -> bytearray:
    """``size`` bytes, every page written, so they are resident."""
    buf = bytearray(size)
    for i in range(0, size, 4096):
        buf[i] = 1
    return buf


def measured(rank: int, *, raise_on: int | None = None, mib: int = 1) -> ranks.RankRecord:
    """This rank's record of a ``gpu_scope("host")`` that holds ``mib`` MiB at its peak."""
    scope = gpu_scope("host")
    try:
        with scope:
            held = touch(mib * MiB)
            if rank == raise_on:
                raise ValueError(f"boom on rank {rank}")
            del held
    except ValueError:
        pass
    assert scope.report is not None
    return ranks.record_of(scope.report)


def raised(rank: int) -> Any:
    """Rank 1 raises inside its scope; its error reaches rank 0's table."""
    return table_json(ranks.gather(measured(rank, raise_on=1), timeout_s=30))


def late(rank: int) -> Any:
    """Rank 1 gathers only after rank 0 gave up; then a collective and a gather of both."""
    store = dist.distributed_c10d._get_default_store()
    if rank == 1:
        store.wait(["test/rank0-gave-up"])
    first = ranks.gather(measured(rank), timeout_s=TIMEOUT_S)
    if rank == 0:
        store.set("test/rank0-gave-up", "1")
    total = torch_sum(rank + 1)  # the user's next collective, on the user's group
    second = ranks.gather(measured(rank), timeout_s=30)
    return {"first": table_json(first), "all_reduce": total, "second": table_json(second)}


def skipped(rank: int) -> Any:
    """Only rank 0 opens an "eval" scope; both then open a "train" scope."""
    alone = ranks.gather(measured(rank), timeout_s=TIMEOUT_S, tag="eval") if rank == 0 else None
    both = ranks.gather(measured(rank), timeout_s=30, tag="train")
    return {"eval": table_json(alone), "train": table_json(both)}


def torch_sum(value: int) -> int:
    """``all_reduce`` SUM of ``value`` over the default group."""
    import torch

    t = torch.tensor([value])
    dist.all_reduce(t)
    return int(t.item())


def dead(rank: int) -> Any:
    """Rank 1 exits before its scope ends: rank 0 reports it missing after the timeout."""
    if rank == 1:
        os._exit(3)
    return table_json(ranks.gather(measured(rank), timeout_s=TIMEOUT_S))


def interrupted(rank: int) -> Any:
    """Ctrl-C reaches rank 0 while it waits for rank 1, which waits to be released."""
    store = dist.distributed_c10d._get_default_store()
    if rank == 1:
        store.wait(["test/release"], timedelta(seconds=60))
        return None
    # A rank started in the background of a non-interactive shell inherits SIGINT ignored,
    # and Python then leaves it ignored: Ctrl-C is what a kernel's or a terminal's handler
    # makes of it, so install Python's own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    threading.Thread(target=interrupt_when_waiting, args=(main,), daemon=True).start()
    table = ranks.gather(measured(rank), timeout_s=600)
    store.set("test/release", "1")
    return table_json(table)


def interrupt_when_waiting(main: int | None) -> None:
    """SIGINT to this process once its main thread is inside the gather's wait."""
    while True:
        frame = sys._current_frames().get(main or 0)
        while frame is not None and frame.f_code.co_name != "_fetch":
            frame = frame.f_back
        if frame is not None:
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.01)


def truth(rank: int) -> Any:
    """Rank r holds ``BASE_MIB + r * EXTRA_MIB`` MiB at its scope's peak."""
    return table_json(ranks.gather(measured(rank, mib=BASE_MIB + rank * EXTRA_MIB), timeout_s=60))


SCENARIOS = {f.__name__: f for f in (raised, late, skipped, dead, interrupted, truth)}


def run(rank: int, scenario: str) -> None:
    """Join the group, play ``scenario``; rank 0 prints the result."""
    dist.init_process_group("gloo", rank=rank, timeout=timedelta(seconds=60))
    result = SCENARIOS[scenario](rank)
    if rank == 0:
        print("RESULT " + json.dumps(result), flush=True)
    if scenario in ("dead", "interrupted"):
        os._exit(0)  # a group with a dead rank cannot be destroyed collectively
    dist.destroy_process_group()


def spawned(index: int, scenario: str, port: str) -> None:
    """One rank started by ``torch.multiprocessing.spawn``: the index is the rank."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2")
    run(index, scenario)


if __name__ == "__main__":
    if sys.argv[1] == "spawn":
        from torch.multiprocessing.spawn import spawn

        spawn(spawned, args=(sys.argv[2], sys.argv[3]), nprocs=2)  # type: ignore[no-untyped-call]
    else:
        run(int(os.environ["RANK"]), sys.argv[1])
