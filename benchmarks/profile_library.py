"""Where the microseconds of the library form go, step by step (issue 26's profile).

    python benchmarks/profile_library.py [--part library|clocks|shell|load] [--rounds N]
                                         [--against REF]

Parts, each in a fresh interpreter (``--part`` runs one here):

- ``library``: ``with timed("x")``, ``with timed("x", keep="totals")``, ``@timed`` calls and
  ``with gpu_scope()`` (CPU: host row) as call trees of their steps (benchmarks/tracer.py:
  ``perf_counter_ns`` around each function, the wrappers' own cost taken out), the steps
  inside a function replayed alone (ContextVar, lock, deque, dataclass init), the cProfile
  listing per block, and ablations (a step swapped for a no-op, the block timed again);
- ``clocks``: what each clock costs here (``process_time`` is a syscall);
- ``floors``: what a lean ``timed`` could cost, sketched beside codetiming
  (benchmarks/floors.py);
- ``shell``: a ``%%timed`` cell and watch-mode cells in an in-process IPython shell
  (benchmarks/profile_shell.py);
- ``load``: ``%load_ext resmagic``: ``-X importtime``, and which modules a first cell uses
  (benchmarks/profile_import.py).

Nothing in ``resmagic/`` is changed: steps are wrapped by monkeypatching in this process.
``--against REF`` profiles the resmagic of git ref REF instead (exported, byte-compiled and
put first on PYTHONPATH); a step it does not have is listed as not wrapped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tracer import Tracer, alternate, cprofile, loop, render_tree, trace

HERE = Path(__file__).resolve().parent


def patch_timed(t: Tracer) -> None:
    """Every step of ``with timed()``, named by what it does."""
    import resmagic.bus as bus
    import resmagic.scopes.base as base
    import resmagic.scopes.timing as timing
    import resmagic.totals as totals
    from resmagic.probes import torch_cuda

    t.patch(timing.timed, "__init__", "timed(...) construction")
    t.patch(base.Scope, "__enter__", "enter: Scope.__enter__ (ContextVar push of the run)")
    t.patch(base.Scope, "_start", "enter: Scope._start")
    t.patch(base, "enclosing_listeners", "enter: listeners lookup (ContextVar get)")
    t.patch(timing.timed, "_open", "enter: timed._open")
    t.patch(torch_cuda, "synchronize", "torch_cuda.synchronize check (torch imported?)")
    t.patch(timing, "_Run", "_Run(...) record")
    t.patch(base.Scope, "__exit__", "exit: Scope.__exit__ (ContextVar pop of the run)")
    t.patch(base.Scope, "_stop", "exit: Scope._stop")
    t.patch(timing.timed, "_close", "exit: timed._close")
    t.patch(base.Scope, "common", "report fields: Scope.common()")
    t.patch(base, "current_cell", "current_cell() (cell provider)")
    t.patch(base, "status_of", "status_of(exc)")
    t.patch(base, "describe_error", "describe_error(exc)")
    t.patch(timing, "TimingReport", "TimingReport(...) (frozen dataclass init)")
    t.patch(timing.timed, "_finish", "exit: timed._finish")
    t.patch(totals, "add", "totals.add (lock, dict row)")
    t.patch(base.Scope, "_finish", "Scope._finish")
    t.patch(base, "publish", "bus.publish")
    t.patch(bus, "_trim", "history trim check (settings.history_limit)")
    t.patch(base.Scope, "_after", "Scope._after (no-op hook)")
    t.patch(base.Scope, "_fresh", "@timed: Scope._fresh (copy.copy of the scope per call)")


def time_shim(t: Tracer) -> None:
    """``time.time/perf_counter/process_time`` as ``timing.time`` sees them, each wrapped."""
    import time as real

    import resmagic.scopes.gpu as gpu
    import resmagic.scopes.timing as timing

    class Shim:
        pass

    shim: Any = Shim()
    shim.time = t.wrap(real.time, "time.time()")
    shim.perf_counter = t.wrap(real.perf_counter, "time.perf_counter()")
    shim.process_time = t.wrap(real.process_time, "time.process_time() (syscall)")
    shim.monotonic = real.monotonic
    modules: tuple[Any, ...] = (timing, gpu)
    for module in modules:
        t._undo.append((module, "time", module.time))
        module.time = shim


def patch_gpu(t: Tracer) -> None:
    """Every step of ``with gpu_scope()``: probes, peaks, sampler, guard, outcome, report."""
    import resmagic.probes.cgroup as cgroup
    import resmagic.probes.host as host
    import resmagic.probes.sources as sources
    import resmagic.probes.torch_cuda as torch_cuda
    import resmagic.probes.workers as workers
    import resmagic.scopes.gpu as gpu
    from resmagic.probes import nvml, peaks
    from resmagic.sampler import Sampler

    t.patch(gpu.gpu_scope, "__init__", "gpu_scope(...) construction")
    t.patch(gpu, "parse_device", "parse_device")
    t.patch(gpu.gpu_scope, "_open", "enter: gpu_scope._open")
    t.patch(gpu.gpu_scope, "_close", "exit: gpu_scope._close")
    t.patch(gpu.gpu_scope, "_read_from", "read every probe (_read_from)")
    for cls, what in (
        (type(sources.HOST), "host probe read"),
        (type(sources.WORKERS), "workers probe read"),
        (type(sources.CONTAINER), "container probe read"),
        (type(sources.ALLOCATOR), "torch allocator probe read"),
        (type(sources.NVML), "NVML probe read"),
    ):
        t.patch(cls, "read", what)
        t.patch(cls, "present", what.replace("read", "present()"))
    t.patch(host, "rss_bytes", "statm read (rss_bytes)")
    t.patch(host, "hwm_bytes", "/proc/self/status read + VmHWM parse (hwm_bytes)")
    t.patch(host, "reset_hwm", "clear_refs write (reset_hwm)")
    t.patch(host, "total_bytes", "host.total_bytes (cached)")
    t.patch(host, "peak_is_exact", "host.peak_is_exact")
    t.patch(workers, "read", "workers.read")
    t.patch(workers, "pids", "workers.pids (children of every thread)")
    t.patch(workers, "_threads", "workers._threads (listdir /proc/self/task, cached 1 s)")
    t.patch(workers, "_refresh", "workers._refresh")
    t.patch(workers, "read_exact", "workers.read_exact")
    t.patch(cgroup, "read", "cgroup.read")
    t.patch(cgroup, "working_set_bytes", "cgroup.working_set_bytes")
    t.patch(cgroup, "oom_kills", "cgroup.oom_kills (memory.oom_control read)")
    t.patch(cgroup, "reset_peak", "cgroup.reset_peak")
    t.patch(cgroup, "read_peak", "cgroup.read_peak")
    t.patch(torch_cuda, "ready", "torch_cuda.ready")
    t.patch(torch_cuda, "empty_cache", "torch_cuda.empty_cache check")
    t.patch(nvml, "visible", "nvml.visible")
    t.patch(peaks.PeakStack, "push", "PeakStack.push (host VmHWM: fold, reset)")
    t.patch(peaks.PeakStack, "pop", "PeakStack.pop (host VmHWM: read, fold)")
    t.patch(peaks.OuterPeak, "push", "OuterPeak.push (container)")
    t.patch(peaks.OuterPeak, "pop", "OuterPeak.pop (container)")
    t.patch(Sampler, "add", "sampler.add (watch list, thread check)")
    t.patch(Sampler, "remove", "sampler.remove")
    t.patch(gpu, "Watch", "Watch(...)")
    t.patch(gpu, "partial", "functools.partial")
    t.patch(gpu, "Guard", "Guard(...)")
    t.patch(gpu, "holders_at_error", "outcome: holders_at_error")
    t.patch(gpu, "holders_named", "outcome: holders_named")
    t.patch(gpu, "oom_killed", "outcome: oom_killed (note)")
    t.patch(gpu, "unguarded", "outcome: unguarded (note)")
    t.patch(gpu, "exact_workers", "outcome: exact_workers")
    t.patch(gpu, "shown", "outcome: shown")
    t.patch(gpu.gpu_scope, "why_no_gpu", "why_no_gpu (probe status texts)")
    t.patch(gpu.gpu_scope, "_pop_peaks", "_pop_peaks")
    t.patch(gpu.gpu_scope, "_row", "_row (one DeviceReport)")
    t.patch(gpu, "DeviceReport", "DeviceReport(...) (frozen dataclass)")
    t.patch(gpu, "GpuReport", "GpuReport(...) (frozen dataclass)")
    t.patch(type(sources.ALLOCATOR), "status", "torch allocator status()")
    t.patch(type(sources.NVML), "status", "NVML status()")


# What a timed block does inside functions the tracer cannot split: replayed alone.
REPLAYS: list[tuple[str, str, str]] = [
    (
        "ContextVar.get()",
        "from contextvars import ContextVar\ncv = ContextVar('x', default=())",
        "cv.get()",
    ),
    (
        "ContextVar push: set((*get(), item))",
        "from contextvars import ContextVar\ncv = ContextVar('x', default=())\nitem = (1, None, ())",
        "tok = cv.set((*cv.get(), item)); cv.set(())",
    ),
    ("threading.Lock with-block", "import threading\nlock = threading.Lock()", "with lock: pass"),
    (
        "deque.append + popleft",
        "from collections import deque\nd = deque([0] * 100)",
        "d.append(1); d.popleft()",
    ),
    ("settings attribute read", "from resmagic.config import settings", "settings.store"),
    ("sys.modules.get('torch')", "import sys", "sys.modules.get('torch')"),
    ("id(self) + tuple build", "o = object()", "(id(o), None, ())"),
    (
        "TimingReport(...) alone",
        "from resmagic.report import TimingReport",
        "TimingReport(status='ok', duration_s=1.0, started_at=1.0, cell=None, error=None,"
        " label='x', wall_s=1.0, cpu_s=1.0, cuda_synced=False)",
    ),
    (
        "same fields as a plain tuple",
        "",
        "('ok', 1.0, 1.0, None, None, 'x', 1.0, 1.0, False)",
    ),
    (
        "Scope.common(...) alone",
        "from resmagic.scopes.base import Scope",
        "Scope.common(1.0, 1.0, None)",
    ),
    (
        "bus.publish(report) alone (no store, no subscribers)",
        "from resmagic.bus import publish\nfrom resmagic.report import TimingReport\n"
        "r = TimingReport(status='ok', duration_s=1.0, started_at=1.0, label='x', wall_s=1.0,"
        " cpu_s=1.0, cuda_synced=False)",
        "publish(r, ())",
    ),
    (
        "totals.add(report) alone",
        "from resmagic import totals\nfrom resmagic.report import TimingReport\n"
        "r = TimingReport(status='ok', duration_s=1.0, started_at=1.0, label='x', wall_s=1.0,"
        " cpu_s=1.0, cuda_synced=False)",
        "totals.add(r)",
    ),
    (
        "copy.copy(timed scope)",
        "import copy\nfrom resmagic import timed\ns = timed('f')",
        "copy.copy(s)",
    ),
    ("timed('x') construction alone", "from resmagic import timed", "timed('x')"),
    (
        "with <prebuilt timed('x')>: pass",
        "from resmagic import timed\ns = timed('x')",
        "with s: pass",
    ),
    (
        "with <prebuilt timed('x', keep='totals')>: pass",
        "from resmagic import timed\ns = timed('x', keep='totals')",
        "with s: pass",
    ),
    ("gpu_scope() construction alone", "from resmagic import gpu_scope", "gpu_scope()"),
    (
        "with <prebuilt gpu_scope()>: pass",
        "from resmagic import gpu_scope\ns = gpu_scope()",
        "with s: pass",
    ),
]


def _swap(owner: Any, name: str, value: Any) -> Callable[[], None]:
    """Set ``owner.name`` to ``value``; returns what puts it back."""
    # A class's own entry (a staticmethod stays one), a module's attribute.
    old = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    setattr(owner, name, value)
    return lambda: setattr(owner, name, old)


def _ablations() -> dict[str, Callable[[], Callable[[], None]]]:
    """Ways to make one step of ``with timed("x"): pass`` a no-op: each returns its undo."""
    import time as real
    import types

    import resmagic.scopes.base as base
    import resmagic.scopes.timing as timing
    import resmagic.totals as totals
    from resmagic.probes import torch_cuda

    common = base.Scope.common(1.0, 1.0, None)
    clocks = types.SimpleNamespace(
        time=real.time, perf_counter=real.perf_counter, process_time=real.perf_counter
    )
    return {
        "whole block": lambda: lambda: None,
        "without bus.publish": lambda: _swap(base, "publish", lambda r, listeners=(): None),
        "without totals.add": lambda: _swap(totals, "add", lambda r: None),
        "without process_time (perf_counter in its place)": lambda: _swap(timing, "time", clocks),
        "without the torch_cuda.synchronize checks": lambda: _swap(
            torch_cuda, "synchronize", lambda: False
        ),
        "without Scope.common() (a constant dict)": lambda: _swap(
            base.Scope, "common", staticmethod(lambda a, d, e: common)
        ),
    }


def ablate(rounds: int) -> dict[str, dict[str, float]]:
    """``with timed("x"): pass`` with each step a no-op in turn, rounds interleaved."""
    block = loop("from resmagic import timed", 'with timed("x"): pass')
    variants = _ablations()
    n = max(5, int(0.001 / max(block(50) / 50, 1e-9)))
    got: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            undo = variants[name]()
            try:
                got[name].append(block(n) / n)
            finally:
                undo()
    return {
        name: {"median": statistics.median(v), "p10": statistics.quantiles(v, n=10)[0]}
        for name, v in got.items()
    }


def run_library(rounds: int, blocks: int) -> None:
    """The library part: trees, replays, ablations, cProfile."""
    import resmagic
    from resmagic import gpu_scope, timed

    print(f"resmagic from {Path(resmagic.__file__).parent}; load average {os.getloadavg()}\n")
    paths = {
        'with timed("x"): pass': ("from resmagic import timed", 'with timed("x"): pass'),
        'with timed("x", keep="totals"): pass': (
            "from resmagic import timed",
            'with timed("x", keep="totals"): pass',
        ),
        '@timed("f") call': (
            'from resmagic import timed\n@timed("f")\ndef f(): pass',
            "f()",
        ),
        '@timed("f", keep="totals") call': (
            'from resmagic import timed\n@timed("f", keep="totals")\ndef f(): pass',
            "f()",
        ),
        "with gpu_scope(): pass": ("from resmagic import gpu_scope", "with gpu_scope(): pass"),
    }
    loops = {name: loop(setup, stmt) for name, (setup, stmt) in paths.items()}
    whole = alternate(loops, rounds)
    del timed, gpu_scope

    tracer = Tracer()
    tracer.calibrate()
    print(
        f"wrapper cost, taken out of every figure: {tracer.inner_ns:.0f} ns inside the step,"
        f" {tracer.outer_ns:.0f} ns in its caller\n"
    )
    patch_timed(tracer)
    time_shim(tracer)
    patch_gpu(tracer)
    if tracer.missing:
        print(f"not in this tree (not wrapped): {', '.join(tracer.missing)}\n")
    for name, fn in loops.items():
        w = whole[name]
        rows, per_call = trace(tracer, fn, rounds=rounds * 2, whole_s=w["p10"])
        print(f"### `{name}`\n")
        print(
            f"unwrapped: median {w['median'] * 1e6:.3f} µs, 10th percentile {w['p10'] * 1e6:.3f} µs"
            f" per block; a wrapper cost {per_call:.0f} ns per call here\n"
        )
        print(render_tree(rows, w["p10"] * 1e6))
        print()
    tracer.unpatch()

    print("### Steps replayed alone (inline loop, µs per step)\n")
    replay = alternate({name: loop(setup, stmt) for name, setup, stmt in REPLAYS}, rounds)
    print("| step | median | 10th percentile |\n|---|---|---|")
    for name, f in replay.items():
        print(f"| {name} | {f['median'] * 1e6:.3f} | {f['p10'] * 1e6:.3f} |")
    print()

    print('### Ablations of `with timed("x"): pass` (one step a no-op, rounds interleaved)\n')
    print(
        "| variant | median µs | 10th percentile µs | saving at the 10th percentile |\n|---|---|---|---|"
    )
    ablated = ablate(rounds)
    full = ablated["whole block"]["p10"]
    for name, f in ablated.items():
        print(
            f"| {name} | {f['median'] * 1e6:.3f} | {f['p10'] * 1e6:.3f} | {(full - f['p10']) * 1e6:+.3f} |"
        )
    print()

    for name, fn in loops.items():
        n = blocks if "gpu_scope" not in name else max(blocks // 20, 50)
        print(f"### cProfile: `{name}` ({n} blocks)\n")
        print(cprofile(fn, n))


CLOCKS: list[tuple[str, str, str]] = [
    ("time.perf_counter()", "from time import perf_counter", "perf_counter()"),
    ("time.perf_counter_ns()", "from time import perf_counter_ns", "perf_counter_ns()"),
    ("time.monotonic()", "from time import monotonic", "monotonic()"),
    ("time.time()", "from time import time", "time()"),
    (
        "time.process_time() (CLOCK_PROCESS_CPUTIME_ID)",
        "from time import process_time",
        "process_time()",
    ),
    ("time.process_time_ns()", "from time import process_time_ns", "process_time_ns()"),
    (
        "time.thread_time() (CLOCK_THREAD_CPUTIME_ID)",
        "from time import thread_time",
        "thread_time()",
    ),
    (
        "time.clock_gettime(CLOCK_PROCESS_CPUTIME_ID)",
        "from time import clock_gettime, CLOCK_PROCESS_CPUTIME_ID as C",
        "clock_gettime(C)",
    ),
    ("os.times()", "from os import times", "times()"),
    (
        "resource.getrusage(RUSAGE_SELF)",
        "from resource import getrusage, RUSAGE_SELF as S",
        "getrusage(S)",
    ),
]


def run_clocks(rounds: int) -> None:
    """What each clock costs per call here (a vDSO read or a syscall)."""
    got = alternate({name: loop(setup, stmt) for name, setup, stmt in CLOCKS}, rounds)
    print("| clock | median µs | 10th percentile µs |\n|---|---|---|")
    for name, f in got.items():
        print(f"| {name} | {f['median'] * 1e6:.3f} | {f['p10'] * 1e6:.3f} |")
    clock = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
    if clock.exists():
        print(f"\nclocksource: {clock.read_text().strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--part", choices=["library", "clocks", "floors", "shell", "load"], action="append"
    )
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--against", metavar="REF", help="profile the resmagic of this git ref instead"
    )
    parser.add_argument("--blocks", type=int, default=2000, help="blocks per cProfile listing")
    args = parser.parse_args()
    parts = args.part or ["library", "clocks", "floors", "shell", "load"]
    env = None
    if args.against:
        import compileall

        from kernel import export

        folder = export(args.against)
        compileall.compile_dir(folder, quiet=1)  # as installed: no compiling at import
        env = dict(os.environ, PYTHONPATH=folder)
    if len(parts) > 1 or env is not None:  # each part in a fresh interpreter
        for part in parts:
            print(f"\n## {part}\n", flush=True)
            subprocess.run(
                [sys.executable, __file__, "--part", part, "--rounds", str(args.rounds)],
                check=True,
                env=env,
            )
        return 0
    part = parts[0]
    if part == "library":
        run_library(args.rounds, args.blocks)
    elif part == "clocks":
        run_clocks(args.rounds)
    elif part == "floors":
        import floors

        floors.main(args.rounds)
    elif part == "shell":
        import profile_shell

        profile_shell.main(args.rounds)
    else:
        import profile_import

        profile_import.main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
