"""What a lean ``timed`` could cost in Python: sketches beside codetiming, one process.

    python benchmarks/floors.py [--rounds N]

Not resmagic's code: minimal context managers and a decorator written here, each doing one
more of the things ``timed`` promises (wall time, CPU time, per-run state that threads and
asyncio tasks cannot mix up, totals, a small record per run), to show which of issue 26's
targets the language itself allows and what each promise costs. Rounds interleaved, 10th
percentile and median per block (benchmarks/tracer.py).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tracer import alternate, loop

SKETCHES = '''
import threading
from collections import deque
from contextvars import ContextVar
from time import perf_counter, process_time

_rows = {}
_history = deque(maxlen=10_000)
_runs = ContextVar("runs", default=())


def _count(label, wall):
    row = _rows.get(label)
    if row is None:
        row = _rows[label] = [0, 0.0, 0.0]
    row[0] += 1
    row[1] += wall
    if wall > row[2]:
        row[2] = wall


class Wall:
    """Wall time into totals; the run's start kept on the object (one run at a time)."""
    __slots__ = ("label", "t0")
    def __init__(self, label):
        self.label = label
    def __enter__(self):
        self.t0 = perf_counter()
        return self
    def __exit__(self, *exc):
        _count(self.label, perf_counter() - self.t0)


class WallCpu(Wall):
    """The same with CPU time: two process_time() syscalls."""
    __slots__ = ("c0",)
    def __enter__(self):
        self.t0 = perf_counter()
        self.c0 = process_time()
        return self
    def __exit__(self, *exc):
        cpu = process_time() - self.c0
        _count(self.label, perf_counter() - self.t0)


class WallContext:
    """Wall time into totals; the run's start in a context variable (threads, tasks)."""
    __slots__ = ("label",)
    def __init__(self, label):
        self.label = label
    def __enter__(self):
        _runs.set((*_runs.get(), (self, perf_counter())))
        return self
    def __exit__(self, *exc):
        now = perf_counter()
        stack = _runs.get()
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0] is self:
                _runs.set(stack[:i] + stack[i + 1 :])
                break
        _count(self.label, now - stack[i][1])


class Record:
    """A small record per run (a tuple in a bounded deque), totals, CPU, start on the object."""
    __slots__ = ("label", "t0", "c0")
    def __init__(self, label):
        self.label = label
    def __enter__(self):
        self.t0 = perf_counter()
        self.c0 = process_time()
        return self
    def __exit__(self, exc_type, exc, tb):
        cpu = process_time() - self.c0
        wall = perf_counter() - self.t0
        _history.append((self.label, wall, cpu, exc_type))
        _count(self.label, wall)


def decorated(label):
    """A decorator whose per-call state lives in the wrapper's frame: no scope object."""
    def wrap(func):
        def call(*args, **kwargs):
            t0 = perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                _count(label, perf_counter() - t0)
        return call
    return wrap


@decorated("f")
def f_wall():
    pass


def f_bare():
    pass


class SlotsReport:
    """A report as a plain class with __slots__: what a frozen dataclass's init costs beside."""
    __slots__ = ("status", "duration_s", "started_at", "cell", "error", "label", "wall_s",
                 "cpu_s", "cuda_synced")
    def __init__(self, status, duration_s, started_at, cell, error, label, wall_s, cpu_s,
                 cuda_synced):
        self.status = status
        self.duration_s = duration_s
        self.started_at = started_at
        self.cell = cell
        self.error = error
        self.label = label
        self.wall_s = wall_s
        self.cpu_s = cpu_s
        self.cuda_synced = cuda_synced
'''

VARIANTS: list[tuple[str, str, str]] = [
    (
        "codetiming.Timer(logger=None)",
        "from codetiming import Timer",
        "with Timer(logger=None): pass",
    ),
    ("perf_counter() pair", "from time import perf_counter", "perf_counter(); perf_counter()"),
    ("sketch: wall only, start on the object, totals", SKETCHES, 'with Wall("x"): pass'),
    ("sketch: + CPU time (process_time pair)", SKETCHES, 'with WallCpu("x"): pass'),
    ("sketch: wall only, start in a ContextVar, totals", SKETCHES, 'with WallContext("x"): pass'),
    ("sketch: + CPU, a tuple record in a deque(maxlen)", SKETCHES, 'with Record("x"): pass'),
    ("sketch: decorator, wall, totals (call)", SKETCHES, "f_wall()"),
    ("bare function call", SKETCHES, "f_bare()"),
    (
        "TimingReport(...): frozen dataclass, keywords",
        "from resmagic.report import TimingReport",
        "TimingReport(status='ok', duration_s=1.0, started_at=1.0, cell=None, error=None,"
        " label='x', wall_s=1.0, cpu_s=1.0, cuda_synced=False)",
    ),
    (
        "the same nine fields: a __slots__ class, positional",
        SKETCHES,
        "SlotsReport('ok', 1.0, 1.0, None, None, 'x', 1.0, 1.0, False)",
    ),
    ("the same nine fields: a tuple", "", "('ok', 1.0, 1.0, None, None, 'x', 1.0, 1.0, False)"),
    (
        "threading.Lock with-block (a lock per run)",
        "import threading\nlock = threading.Lock()",
        "with lock: pass",
    ),
]


def main(rounds: int) -> None:
    """Print the sketches' table."""
    got = alternate({name: loop(setup, stmt) for name, setup, stmt in VARIANTS}, rounds)
    peer = got["codetiming.Timer(logger=None)"]
    print("| block | µs per block: median (10th pct.) | ÷ codetiming (10th pct.) |\n|---|---|---|")
    for name, f in got.items():
        print(
            f"| {name} | {f['median'] * 1e6:.3f} ({f['p10'] * 1e6:.3f}) | {f['p10'] / peer['p10']:.2f}× |"
        )
    print(f"\nthreads: {threading.active_count()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    main(parser.parse_args().rounds)
