"""What gathering every rank's record costs per scope: the store (resmagic.ranks) vs collectives.

Run: ``nice -n 10 .venv/bin/python benchmarks/ranks_cost.py [rounds]`` (default 300). For 2
and then 4 ranks on gloo over 127.0.0.1 (``torch.multiprocessing.spawn``), each round runs
every candidate once, in a rotating order, and each rank times its own calls:

- ``store``: :func:`resmagic.ranks.gather` (key per rank in the default group's store; rank 0
  waits, reads and deletes; the others write and go on);
- ``all_gather_object``: the record object, pickled, on the default group (two collectives);
- ``tensor``: the record encoded into a fixed 48 x int64 tensor (error text: 256 bytes in it),
  one ``all_gather`` on the default group, decoded on rank 0;
- ``tensor, own group``: the same on a second gloo group (what resmagic would need beside a
  user's nccl group: a group whose timeout it owns); its creation is timed once;
- ``barrier``: ``dist.barrier()``, the floor of any collective that waits for every rank.

Prints the median and 90th percentile per call, in µs, for rank 0 and for the other ranks.
The machine's cores are shared: ratios within one run hold, absolute figures move.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resmagic import ranks
from resmagic.ranktable import RankDevice, RankRow

PASSES = 6  # each way runs rounds/PASSES scopes in a row, PASSES times, in rotating order
WORDS = 48  # int64 words of the fixed record: 8 header, 8 devices x 1, 32 error bytes
ERROR_WORDS = 32


def sample_record() -> RankRow:
    """A record as a one-GPU gpu_scope would make it, with an error text."""
    devices = (
        RankDevice("host", "RSS", 900 << 20, 1200 << 20, 950 << 20, 64 << 30, True),
        RankDevice("cuda:0", "torch allocator", 10 << 30, 14 << 30, 10 << 30, 80 << 30, True),
        RankDevice("cuda:0", "NVML", 11 << 30, 15 << 30, 11 << 30, 80 << 30, False),
    )
    return RankRow(0, "error", 1.234, "ValueError: " + "x" * 150, devices, os.getpid(), "node")


def encode_tensor(record: RankRow) -> Any:
    """The record as a fixed-size int64 tensor; the error text truncated to 256 bytes."""
    import torch

    words = [0] * WORDS
    words[:4] = [
        record.rank,
        ("ok", "error", "interrupted").index(record.status),
        int((record.wall_s or 0.0) * 1e9),
        record.pid or 0,
    ]
    for i, d in enumerate(record.devices[:8]):
        words[8 + i] = d.peak_bytes
    text = (record.error or "").encode()[: ERROR_WORDS * 8]
    words[4] = len(text)
    padded = text.ljust(ERROR_WORDS * 8, b"\0")
    words[16:] = [
        int.from_bytes(padded[i : i + 8], "little", signed=True) for i in range(0, len(padded), 8)
    ]
    return torch.tensor(words, dtype=torch.int64)


def decode_tensor(t: Any) -> tuple[int, int, str]:
    """(rank, host peak, error text) back from a record tensor."""
    words = t.tolist()
    raw = b"".join(w.to_bytes(8, "little", signed=True) for w in words[16:])
    return words[0], words[8], raw[: words[4]].decode(errors="replace")


def candidates(rank: int, size: int, side: Any) -> dict[str, Callable[[], object]]:
    """One call of each way to gather, as this rank makes it."""
    import torch
    import torch.distributed as dist

    record = sample_record()

    def by_store() -> object:
        return ranks.gather(record, timeout_s=60, tag="bench")

    def by_object() -> object:
        out: list[object] = [None] * size
        dist.all_gather_object(out, record)
        return out

    def by_tensor(group: Any = None) -> object:
        out = [torch.empty(WORDS, dtype=torch.int64) for _ in range(size)]
        dist.all_gather(out, encode_tensor(record), group=group)
        return [decode_tensor(t) for t in out] if rank == 0 else None

    return {
        "store (resmagic.ranks)": by_store,
        "all_gather_object": by_object,
        "tensor all_gather": by_tensor,
        "tensor, own gloo group": lambda: by_tensor(side),
        "barrier (floor)": dist.barrier,
    }


def run_rank(rank: int, size: int, port: int, rounds: int, out: Any) -> None:
    """One rank: time every candidate ``rounds`` times, interleaved; send the times home."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=size, timeout=timedelta(seconds=120))
    t0 = time.perf_counter()
    side = dist.new_group(backend="gloo", timeout=timedelta(seconds=30))
    once = {"new_group(gloo) once": time.perf_counter() - t0}
    t0 = time.perf_counter()
    ranks.gather(sample_record(), timeout_s=60, tag="first")  # the first round trips
    once["first store gather"] = time.perf_counter() - t0
    calls = candidates(rank, size, side)
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    for p in range(PASSES):
        for name in names[p % len(names) :] + names[: p % len(names)]:
            dist.barrier()  # every way starts its run of scopes with the ranks level
            for i in range(rounds // PASSES + 5):
                start = time.perf_counter_ns()
                calls[name]()
                if i >= 5:  # warm-up scopes left out
                    times[name].append((time.perf_counter_ns() - start) / 1000)
    out.put((rank, once, times))
    dist.barrier()
    dist.destroy_process_group()


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(size: int, rounds: int) -> dict[int, tuple[dict[str, float], dict[str, list[float]]]]:
    """Every rank's one-off costs and per-call times, for ``size`` ranks."""
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import start_processes

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    start_processes(  # type: ignore[no-untyped-call]
        run_rank,
        args=(size, free_port(), rounds, queue),
        nprocs=size,
        start_method="spawn",
        join=False,
    )
    got = {}
    for _ in range(size):
        rank, once, times = queue.get()
        got[rank] = (once, times)
    return got


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values``."""
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


def table(size: int, got: dict[int, tuple[dict[str, float], dict[str, list[float]]]]) -> str:
    """A markdown table of one size's results."""
    lines = [
        f"\n### {size} ranks, gloo, CPU ({len(got[0][1]['barrier (floor)'])} scopes each)\n",
        "| way | rank 0 median µs | rank 0 p90 µs | other ranks median µs | other ranks p90 µs |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, zero in got[0][1].items():
        others = [t for r in range(1, size) for t in got[r][1][name]]
        lines.append(
            f"| {name} | {statistics.median(zero):.0f} | {pct(zero, 0.9):.0f}"
            f" | {statistics.median(others):.0f} | {pct(others, 0.9):.0f} |"
        )
    for name in got[0][0]:
        worst = max(got[r][0][name] for r in got)
        lines.append(f"\n{name}: {worst * 1e3:.1f} ms (slowest rank)")
    return "\n".join(lines)


def main() -> None:
    """Measure 2 and 4 ranks and print the tables."""
    import torch

    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    for size in (2, 4):
        print(table(size, measure(size, rounds)))


if __name__ == "__main__":
    main()
