"""What the workers and container rows and the guard cost, beside the rows off (issue 16).

Run as root on a machine with cgroup v1: ``.venv/bin/python benchmarks/rows_cost.py``. The
script moves itself into a child cgroup with a 4 GiB limit (so the container row and the
guard have a limit to read), forks two children that hold 100 MiB each (so the workers row
has work), and prints per-sample costs, per-block costs with the rows on and off, and the
sampler thread's share of a core at 10 Hz. Not part of ``make bench``: a side-by-side run
whose ratios hold on a loaded machine; the absolute numbers do not.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resmagic import gpu_scope, settings
from resmagic.guard import Guard
from resmagic.probes import cgroup, cgroup_where, sources, workers
from tests.children import holding_children

MiB = 1 << 20


def per_call_us(fn: Callable[[], object], seconds: float = 0.5) -> float:
    """Microseconds per call of ``fn``: the best of three runs of ``seconds`` each."""
    best = float("inf")
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            fn()
            n += 1
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


@contextmanager
def limited_cgroup() -> Iterator[Path]:
    """This process inside a new child cgroup v1 with a 4 GiB limit, moved back out after."""
    group = cgroup.own()
    if group is None or group.version != 1:
        sys.exit("needs cgroup v1 (and root)")
    path = Path(group.path) / f"resmagic-bench-{os.getpid()}"
    path.mkdir()
    (path / "memory.limit_in_bytes").write_text(str(4 << 30))
    (path / "cgroup.procs").write_text(str(os.getpid()))
    cgroup_where._self.cache_clear()  # this process has moved
    try:
        yield path
    finally:
        Path(group.path, "cgroup.procs").write_text(str(os.getpid()))
        cgroup_where._self.cache_clear()
        path.rmdir()


def block(rows: bool) -> Callable[[], object]:
    """One empty ``gpu_scope("host")`` block, with the workers and container rows or without."""

    def run() -> None:
        scope = gpu_scope("host")
        if not rows:
            scope._probes = (sources.HOST,)  # the rows off: what gpu_scope read before
        with scope:
            pass

    return run


def sampler_share(seconds: float, **scope: object) -> float:
    """The process's CPU seconds per second while a block sleeps: the sampler's share."""
    with gpu_scope("host", **scope):  # type: ignore[arg-type]
        time.sleep(0.3)  # past the thread's start
        cpu, wall = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return (time.process_time() - cpu) / (time.perf_counter() - wall)


def main() -> None:
    settings.sample_interval = 0.1
    settings.sampler_linger = 1.0
    with limited_cgroup():
        print(f"container limit: {(cgroup.limit_bytes() or 0) >> 20} MiB")
        guard = Guard(0.99)
        rows = [
            ("container reading (working set: usage + memory.stat)", cgroup.read),
            ("guard check", guard.check),
            ("workers reading, no children", workers.read),
        ]
        for name, fn in rows:
            print(f"{name:60s} {per_call_us(fn):8.1f} µs")
        block_off, block_on = per_call_us(block(False)), per_call_us(block(True))
        with holding_children(2):
            two = per_call_us(workers.read)
            exact = per_call_us(workers.read_exact, 0.3)
            block_children = per_call_us(block(True))
            share_on = sampler_share(3.0, guard=0.99)
        share_idle = sampler_share(3.0)
        print(f"{'workers reading, 2 children of 100 MiB':60s} {two:8.1f} µs")
        print(f"{'workers exact (smaps_rollup), 2 children':60s} {exact:8.1f} µs")
        print(f"{'gpu_scope block, rows off (host only)':60s} {block_off:8.1f} µs")
        print(f"{'gpu_scope block, rows on, no children':60s} {block_on:8.1f} µs")
        print(f"{'gpu_scope block, rows on, 2 children held':60s} {block_children:8.1f} µs")
        print(f"sampler at 10 Hz, rows + guard, 2 children: {share_on:.2%} of a core")
        print(f"sampler at 10 Hz, rows, no children:        {share_idle:.2%} of a core")


if __name__ == "__main__":
    main()
