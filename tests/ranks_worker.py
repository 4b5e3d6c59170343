"""One rank of a real gloo group on 127.0.0.1, for tests/test_ranks.py (not a test module).

``python tests/ranks_worker.py SCENARIO...`` with torchrun's environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) plays each scenario in turn in one group,
so the tests share one start of two processes (each imports torch: ~1.5 s); ``python
tests/ranks_worker.py spawn PORT SCENARIO...`` starts the two ranks with
``torch.multiprocessing.spawn``. Rank 0 prints every scenario's result as one JSON line,
prefixed ``RESULT ``. Ranks wait for each other through the group's store, never through
sleeps, so each scenario plays out the same way on a loaded machine. ``dead``,
``destroyed`` and ``regroup`` must be last: rank 1 leaves for good; the group is gone.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch.distributed as dist
from torch._C._distributed_c10d import PrefixStore, TCPStore

from resmagic import gpu_scope, history, timed
from resmagic.ranktable import RankTable
from resmagic.report import GpuReport

MiB = 1 << 20
TIMEOUT_S = 1.0  # short: the scenarios that wait for it have a rank that will never write
BASE_MIB = 50
EXTRA_MIB = 200  # rank 1 allocates this much more than rank 0


def table_json(table: RankTable | None) -> Any:
    """The table as plain JSON: its rows, each a dict with ``[before, peak]`` per device."""
    if table is None:
        return None
    rows: list[dict[str, Any]] = []
    for row in table.rows:
        devices = {d.label: [d.before_bytes, d.peak_bytes] for d in row.devices}
        fields = {"rank": row.rank, "status": row.status, "error": row.error, "wall": row.wall_s}
        rows.append({**fields, **devices})
    return {
        "rank": table.rank,
        "rows": rows,
        "interrupted": table.interrupted,
        "peak": table.peak("host"),
        "note": table.note,
    }


def touch(size: int) -> bytearray:
    """``size`` bytes, every page written, so they are resident."""
    buf = bytearray(size)
    for i in range(0, size, 4096):
        buf[i] = 1
    return buf


def store() -> Any:
    return dist.distributed_c10d._get_default_store()


def truth(rank: int) -> Any:
    """Rank r holds ``BASE_MIB + r * EXTRA_MIB`` MiB at its scope's peak."""
    with gpu_scope("host", ranks=True) as scope:
        held = touch((BASE_MIB + rank * EXTRA_MIB) * MiB)
        del held
    assert scope.report is not None
    return table_json(scope.report.ranks)


def raised(rank: int) -> Any:
    """Rank 1 raises inside its scope; its error reaches rank 0's table."""
    scope = gpu_scope("host", ranks=True)
    try:
        with scope:
            if rank == 1:
                raise ValueError("boom on rank 1")
    except ValueError:
        pass
    assert scope.report is not None
    return table_json(scope.report.ranks)


def timing(rank: int) -> Any:
    """``timed(ranks=True)``: rank 1 sleeps 0.2 s inside; rank 0's report has both walls."""
    with timed("step", ranks=True) as t:
        if rank == 1:
            time.sleep(0.2)
    assert t.report is not None
    return {"table": table_json(t.report.ranks), "summary": t.report.summary()}


def skipped(rank: int) -> Any:
    """Only rank 0 opens an "eval" scope; both then open a "train" scope."""
    alone = None
    if rank == 0:
        with timed("eval", ranks=True, ranks_timeout_s=TIMEOUT_S) as t:
            pass
        alone = t.report.ranks if t.report is not None else None
    with timed("train", ranks=True) as both:
        pass
    assert both.report is not None
    return {"eval": table_json(alone), "train": table_json(both.report.ranks)}


def late(rank: int) -> Any:
    """Rank 1 gathers only after rank 0 gave up; then a collective and a gather of both."""
    if rank == 1:
        store().wait(["test/rank0-gave-up"])
    with gpu_scope("host", ranks=True, ranks_timeout_s=TIMEOUT_S) as first:
        pass
    if rank == 0:
        store().set("test/rank0-gave-up", "1")
    total = torch_sum(rank + 1)  # the user's next collective, on the user's group
    with gpu_scope("host", ranks=True) as second:
        pass
    assert first.report is not None
    assert second.report is not None
    return {
        "first": table_json(first.report.ranks),
        "all_reduce": total,
        "second": table_json(second.report.ranks),
    }


def forked(rank: int) -> Any:
    """Each rank forks a child, as a DataLoader worker, that opens a ranks scope; then both
    ranks gather again and use their store. Rank 0 learns rank 1's child's answer by the store.
    """
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its parent's group, store socket and all
        with timed("worker", ranks=True, ranks_timeout_s=TIMEOUT_S) as t:
            pass
        os.write(write, b"1" if t.report is not None and t.report.ranks is not None else b"0")
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        gathered = pipe.read().decode()
    os.waitpid(pid, 0)
    with timed("after-fork", ranks=True) as both:
        pass
    assert both.report is not None
    try:
        store().set(f"test/forked-{rank}", gathered)
        answers = [gathered, store().get("test/forked-1").decode()] if rank == 0 else []
    except Exception as exc:  # the store connection a child broke
        answers = [type(exc).__name__]
    return {"children_gathered": answers, "after": table_json(both.report.ranks)}


def destroyed(rank: int) -> Any:
    """Both ranks gather, then destroy the group: is rank 0's port free for a new group?"""
    with timed("before-destroy", ranks=True) as t:
        pass
    assert t.report is not None
    dist.destroy_process_group()
    with socket.socket() as probe:  # what a new group's store on the same port does first
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("", int(os.environ["MASTER_PORT"])))
            port = "free"
        except OSError as exc:
            port = os.strerror(exc.errno or 0)
    return {"table": table_json(t.report.ranks), "port": port}


def regroup(rank: int) -> Any:
    """Two groups in turn on one store that outlives them (as torchrun's agent store): in
    each, rank 1 gathers only once rank 0 gave up on it, and it raises in the first only.

    So the second group's rank 0 can find nothing of rank 1 but the first group's late
    record: its row must be missing, not that record's ``error``.
    """
    port = int(os.environ["TEST_STORE_PORT"])
    base = TCPStore("127.0.0.1", port, 2, rank == 0, timedelta(seconds=60))
    dist.destroy_process_group()  # the run's group: the two below are made on ``base``
    tables = []
    for group in (1, 2):
        pg_store = PrefixStore("default_pg", base)
        dist.init_process_group("gloo", store=pg_store, rank=rank, world_size=2)
        if rank == 1:
            base.wait([f"test/regroup-{group}-gave-up"])
        scope = timed("regroup", ranks=True, ranks_timeout_s=TIMEOUT_S)
        try:
            with scope:
                if rank == 1 and group == 1:
                    raise ValueError("late in the first group")
        except ValueError:
            pass
        assert scope.report is not None
        tables.append(table_json(scope.report.ranks))
        if rank == 0:
            base.set(f"test/regroup-{group}-gave-up", "1")
            base.wait([f"test/regroup-{group}-sent"])  # rank 1's record is in the store
            # Gloo's addresses of the old group: a rank of the new one reading them first
            # would dial the old group. Only gloo's: resmagic's keys stay, as they would.
            for key in base.list_keys():
                if key.startswith("default_pg/0//cpu/"):
                    base.delete_key(key)
            base.set(f"test/regroup-{group}-cleared", "1")
        else:
            base.set(f"test/regroup-{group}-sent", "1")  # on the socket its record took
            base.wait([f"test/regroup-{group}-cleared"])
        dist.destroy_process_group()
    return tables


def torch_sum(value: int) -> int:
    """``all_reduce`` SUM of ``value`` over the default group."""
    import torch

    t = torch.tensor([value])
    dist.all_reduce(t)
    return int(t.item())


def interrupted(rank: int) -> Any:
    """Ctrl-C reaches rank 0 while it waits for rank 1, which waits to be released."""
    if rank == 1:
        store().wait(["test/release"], timedelta(seconds=60))
        return None
    # A rank started in the background of a non-interactive shell inherits SIGINT ignored,
    # and Python then leaves it ignored: Ctrl-C is what a kernel's or a terminal's handler
    # makes of it, so install Python's own.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident
    threading.Thread(target=interrupt_when_waiting, args=(main,), daemon=True).start()
    scope = gpu_scope("host", ranks=True, ranks_timeout_s=600)  # only Ctrl-C ends the wait
    raised_after = False
    try:
        with scope:
            pass
    except KeyboardInterrupt:
        raised_after = True
    store().set("test/release", "1")
    assert scope.report is not None
    published = any(r is scope.report for r in history())
    return {"table": table_json(scope.report.ranks), "raised": raised_after, "published": published}


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


def dead(rank: int) -> Any:
    """Rank 1 exits before its scope ends: rank 0 reports it missing after the timeout."""
    if rank == 1:
        os._exit(3)
    with gpu_scope("host", ranks=True, ranks_timeout_s=TIMEOUT_S) as scope:
        pass
    report = scope.report
    assert isinstance(report, GpuReport)
    return table_json(report.ranks)


SCENARIOS = {
    f.__name__: f
    for f in (truth, raised, timing, skipped, late, forked, regroup, interrupted, dead, destroyed)
}


def run(rank: int, scenarios: list[str]) -> None:
    """Join the group, play each scenario; rank 0 prints the results."""
    dist.init_process_group("gloo", rank=rank, timeout=timedelta(seconds=60))
    results = {name: SCENARIOS[name](rank) for name in scenarios}
    if rank == 0:
        print("RESULT " + json.dumps(results), flush=True)
    if "dead" in scenarios or "interrupted" in scenarios:
        os._exit(0)  # a group with a dead or stray rank cannot be destroyed collectively
    if dist.is_initialized():  # "destroyed" destroyed it
        dist.destroy_process_group()


def spawned(index: int, port: str, scenarios: list[str]) -> None:
    """One rank started by ``torch.multiprocessing.spawn``: the index is the rank."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2")
    run(index, scenarios)


if __name__ == "__main__":
    if sys.argv[1] == "spawn":
        from torch.multiprocessing.spawn import spawn

        spawn(spawned, args=(sys.argv[2], sys.argv[3:]), nprocs=2)  # type: ignore[no-untyped-call]
    else:
        run(int(os.environ["RANK"]), sys.argv[1:])
