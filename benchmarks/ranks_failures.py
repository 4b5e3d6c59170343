"""What each way of gathering does when rank 1 misbehaves, and whether the user's group survives.

Run: ``nice -n 10 .venv/bin/python benchmarks/ranks_failures.py`` (about a minute). Two gloo
ranks on 127.0.0.1 (forked), the default group's timeout 20 s, the gather's 1 s. Ways:

- ``store``: :func:`resmagic.ranks.gather`;
- ``object``: ``all_gather_object`` on the default group (no timeout of its own);
- ``tensor``: ``all_gather`` of an int64 tensor on the default group (no timeout either);
- ``async``: the same with ``async_op=True`` and ``work.wait(timeout)``;
- ``own group``: the tensor on ``new_group(backend="gloo", timeout=1 s)``;
- ``monitored``: ``monitored_barrier(timeout=1 s, wait_all_ranks=True)`` on the default
  group, then the tensor.

Rank 1 either plays along (``ok``), raises inside its scope (``raise``: its record says so),
exits before its scope ends (``exit``), sleeps 3 s past the 1 s timeout (``late``) or skips
the scope and goes straight to the user's next collective (``skip``). After the gather each
live rank runs the user's ``all_reduce`` (ranks 1 + 2: 3 is right) on the default group,
then the same gather again. One line per case: what rank 0 got, in how long, and whether
the user's collective and the second gather worked.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import socket
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
import torch.distributed as dist

from resmagic import ranks
from resmagic.ranktable import RankRow

GATHER_S = 1.0
WAYS = ("store", "object", "tensor", "async", "own group", "monitored")
CASES = ("ok", "raise", "exit", "late", "skip")


def record(rank: int, case: str) -> RankRow:
    """Rank ``rank``'s record; rank 1 raised inside its scope in the ``raise`` case."""
    failed = case == "raise" and rank == 1
    error = "ValueError: boom on rank 1" if failed else None
    return RankRow(rank, "error" if failed else "ok", 0.5, error)


def as_tensor(rec: RankRow) -> torch.Tensor:
    """The record's rank and status as a tensor: the error text does not fit."""
    return torch.tensor([rec.rank, rec.status == "error"], dtype=torch.int64)


def gatherer(way: str, side: Any) -> Callable[[RankRow], object]:
    """One gather of ``way``, returning what this rank got."""

    def tensor(rec: RankRow, group: Any = None, wait: bool = False) -> object:
        out = [torch.zeros(2, dtype=torch.int64) for _ in range(dist.get_world_size())]
        work = dist.all_gather(out, as_tensor(rec), group=group, async_op=wait)
        if wait:
            work.wait(timeout=timedelta(seconds=GATHER_S))
        return [t.tolist() for t in out]

    def store(rec: RankRow) -> object:
        table = ranks.gather(rec, timeout_s=GATHER_S)
        assert table is not None
        return [(r.error or r.status)[:24] for r in table.rows]

    def objects(rec: RankRow) -> object:
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, rec)
        return [r.error or r.status for r in out]

    def monitored(rec: RankRow) -> object:
        dist.monitored_barrier(timeout=timedelta(seconds=GATHER_S), wait_all_ranks=True)
        return tensor(rec)

    return {
        "store": store,
        "object": objects,
        "tensor": tensor,
        "async": lambda rec: tensor(rec, wait=True),
        "own group": lambda rec: tensor(rec, side),
        "monitored": monitored,
    }[way]


def attempt(what: Callable[[], object]) -> str:
    """What ``what`` returned, or raised, and in how long."""
    start = time.perf_counter()
    try:
        got = str(what())
    except Exception as exc:
        got = f"raised {type(exc).__name__}: {str(exc).splitlines()[0][-70:]}"
    return f"{time.perf_counter() - start:.1f} s {got}"


def user_sum(rank: int) -> object:
    """The user's next collective on the default group."""
    t = torch.tensor([rank + 1])
    work = dist.all_reduce(t, async_op=True)
    work.wait(timeout=timedelta(seconds=5))
    return int(t.item())


def rank_main(rank: int, port: int, way: str, case: str, out: Any) -> None:
    """One rank of one case: gather, the user's all_reduce, gather again."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=20))
    side = dist.new_group(backend="gloo", timeout=timedelta(seconds=GATHER_S))
    gather = gatherer(way, side)
    if rank == 1 and case == "exit":
        os._exit(0)
    if rank == 1 and case == "late":
        time.sleep(3 * GATHER_S)
    if rank == 0 or case != "skip":
        out.put((rank, "gather", attempt(lambda: gather(record(rank, case)))))
    out.put((rank, "all_reduce", attempt(lambda: user_sum(rank))))
    out.put((rank, "again", attempt(lambda: gather(record(rank, "ok")))))
    out.close()
    out.join_thread()
    os._exit(0)  # a broken group cannot be destroyed collectively


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_case(way: str, case: str) -> dict[tuple[int, str], str]:
    """Both ranks of one case; what each step gave, per rank."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=rank_main, args=(r, port, way, case, out)) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    got = {}
    while True:
        try:
            rank, step, text = out.get(timeout=0.5)
        except queue.Empty:
            break
        got[(rank, step)] = text
    for p in procs:
        if p.is_alive():
            p.kill()
            got[(procs.index(p), "hung")] = "killed after 60 s"
    return got


def main() -> None:
    """Every way, every case: rank 0's view, one line each."""
    print(f"torch {torch.__version__}; gather timeout {GATHER_S} s, default group's 20 s")
    for way in WAYS:
        for case in CASES:
            got = run_case(way, case)
            print(f"\n{way} / rank 1 {case}")
            for key in sorted(got):
                print(f"  rank {key[0]} {key[1]:<10} {got[key]}")


if __name__ == "__main__":
    main()
