"""The half of the benchmark that runs inside the ipykernel (imported there by run.py).

Every function returns plain data as a JSON string, so the driver reads it back from the
execute reply without any pretty-printer truncation.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from IPython import get_ipython
from IPython.utils.capture import capture_output


def _check(src: str) -> None:
    """Run ``src`` once and raise if the cell failed: a broken variant must not look fast."""
    with capture_output(display=True) as cap:
        result = get_ipython().run_cell(src, store_history=False)
    if not result.success:
        error = result.error_before_exec or result.error_in_exec
        msg = f"benchmark cell failed: {error!r}\n--- cell ---\n{src}\n--- output ---\n{cap.stdout}{cap.stderr}"
        raise RuntimeError(msg)


def _cells(src: str, n: int) -> float:
    """Mean seconds per nested ``run_cell(src)`` over ``n`` cells run back to back."""
    run = get_ipython().run_cell
    t0 = time.perf_counter()
    for _ in range(n):
        run(src, store_history=False)
    return (time.perf_counter() - t0) / n


def per_cell(
    variants: list[tuple[str, str | None, str]],
    *,
    reps: int,
    max_cells: int,
    budget_s: float,
    warmup: int = 10,
) -> str:
    """Seconds per cell of each variant, over ``reps`` rounds with the variants interleaved.

    A variant is ``(name, before, cell)``: ``before`` (untimed, may be None) switches its
    tool on or off, so a bare cell and the tool's cell alternate in one kernel and a slow
    phase of the machine hits both alike. Each variant runs as many cells per round as fit in
    ``budget_s`` (from a pilot), at most ``max_cells``, at least 10, so a peer that costs
    100 ms per cell does not take an hour.
    """
    counts: dict[str, int] = {}
    results: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    threads: dict[str, int] = {}
    for _, before, src in variants:
        if before:
            _check(before)
        _check(src)
    with capture_output(display=True):
        for name, before, src in variants:
            if before:
                _check(before)
            pilot = _cells(src, warmup)
            counts[name] = max(10, min(max_cells, int(budget_s / max(pilot, 1e-9))))
        for _ in range(reps):
            for name, before, src in variants:
                if before:
                    _check(before)
                results[name].append(_cells(src, counts[name]))
                threads[name] = max(threads.get(name, 0), threading.active_count())
    return json.dumps({"seconds": results, "cells": counts, "threads": threads})


def run_quiet(src: str) -> str:
    """Run one cell with its output swallowed; return what it printed."""
    _check(src)
    return json.dumps("ok")


def load_time(code: str) -> str:
    """Seconds to run ``code`` (a ``%load_ext`` line or an import) and what it imported."""
    import sys

    ip = get_ipython()
    torch_before = "torch" in sys.modules
    modules_before = len(sys.modules)
    with capture_output(display=True) as cap:
        t0 = time.perf_counter()
        result = ip.run_cell(code, store_history=False)
        seconds = time.perf_counter() - t0
    if not result.success:
        msg = f"load failed: {code!r}: {result.error_before_exec or result.error_in_exec!r}\n{cap.stdout}"
        raise RuntimeError(msg)
    return json.dumps(
        {
            "seconds": seconds,
            "torch_before": torch_before,
            "torch_after": "torch" in sys.modules,
            "new_modules": len(sys.modules) - modules_before,
        }
    )


def resmagic_last(kind: str) -> str:
    """What resmagic recorded for the last cell: host peak above 'before', or wall seconds."""
    import resmagic

    report: Any = resmagic.history()[-1]
    if kind == "peak":
        row = report.device("host")
        return json.dumps(
            {"peak_above_before": row.peak_bytes - row.before_bytes, "exact": row.peak_exact}
        )
    return json.dumps({"seconds": getattr(report, "wall_s", None) or report.duration_s})


def sampler_cost(interval: float, seconds: float) -> str:
    """CPU seconds per wall second of resmagic's sampler thread reading host memory.

    The thread's own CPU clock (``pthread_getcpuclockid``) is read from this thread, so the
    sampler runs exactly as in a cell, unwrapped.
    """
    from resmagic.config import settings
    from resmagic.probes import host
    from resmagic.sampler import Watch, sampler

    old = settings.sample_interval
    settings.sample_interval = interval
    watch = Watch(lambda: [host.read()])
    try:
        sampler.add(watch)
        thread = sampler._thread
        assert thread is not None
        assert thread.ident is not None
        clock = time.pthread_getcpuclockid(thread.ident)
        time.sleep(interval * 2)  # let it settle into its loop
        samples0, cpu0, wall0 = watch.samples, time.clock_gettime(clock), time.perf_counter()
        time.sleep(seconds)
        samples1, cpu1, wall1 = watch.samples, time.clock_gettime(clock), time.perf_counter()
    finally:
        sampler.remove(watch)
        settings.sample_interval = old
    wall = wall1 - wall0
    return json.dumps(
        {
            "interval_s": interval,
            "wall_s": wall,
            "cpu_s": cpu1 - cpu0,
            "samples": samples1 - samples0,
            "error": watch.error,
        }
    )


LONG_BODY = "\n".join(f"x{i} = {i} * 2" for i in range(100))

NOOP_MAGIC = '''
from IPython.core.magic import register_cell_magic as _register_cell_magic
@_register_cell_magic
def noop(line, cell):
    """A cell magic that does nothing: IPython's own floor for any cell magic."""
'''


def profile_cells(src: str, n: int, top: int) -> str:
    """cProfile of ``n`` nested cells: the ``top`` functions by own time and by cumulative."""
    import cProfile
    import io
    import pstats

    _check(src)
    run = get_ipython().run_cell
    profiler = cProfile.Profile()
    with capture_output(display=True):
        profiler.enable()
        for _ in range(n):
            run(src, store_history=False)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return json.dumps(out.getvalue())


def stage_times(n: int) -> str:
    """Microseconds per call of each stage of a ``%%timed`` / ``%%gpu_scope`` cell, and of watch mode."""
    import timeit

    from resmagic.ipython.cells import stack as cell_mod

    ip = get_ipython()
    magics: Any = ip.magics_manager.registry["ResMagics"]

    def per(fn: Any, number: int = n) -> float:
        with capture_output(display=True):
            return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6

    def scopes(magic: str, line: str) -> Any:
        def go() -> None:
            with cell_mod.inside(ip, [magics.session.factory.layer(magic, line)]):
                pass

        return go

    out = {}
    for magic, line in (
        ("timed", ""),
        ("gpu_scope", "--no-panel"),
        ("gpu_scope", "-q"),
        ("gpu_scope", ""),
    ):
        key = f"%%{magic} {line}".strip()
        layer = magics.session.factory.layer(magic, line)
        out[key] = {
            **_parse_stages(ip, magics, magic, line, per),
            "_prepare(): peel + help check + layer": per(
                lambda m=magic, x=line: magics._prepare(m, x, "pass", None)
            ),
            "compile_body()": per(lambda: cell_mod.compile_body(ip, "pass", 1)),
            "compile_body(), 100-line body": per(
                lambda: cell_mod.compile_body(ip, LONG_BODY, 1), max(n // 50, 5)
            ),
            "scope enter + exit + report + render (layer built)": per(
                lambda layer=layer: _enter_exit(ip, cell_mod, layer)
            ),
            "layer() + enter + exit + render": per(scopes(magic, line)),
        }
    return json.dumps(out)


def _parse_stages(ip: Any, magics: Any, magic: str, line: str, per: Any) -> dict[str, float]:
    """The option line's costs: split, the header transformer, the layer built from it."""
    from resmagic.ipython.cells import options as layers_mod

    return {
        "split_once(line)": per(lambda: layers_mod.split_once(line)),
        "header transformer (our line to a comment, layer built)": per(
            lambda: _hide_header(ip, f"%%{magic} {line}".strip())
        ),
        "layer(): split + argparse + build scope": per(
            lambda: magics.session.factory.layer(magic, line)
        ),
    }


def _hide_header(ip: Any, first: str) -> None:
    header = next(
        t for t in ip.input_transformers_cleanup if type(t).__name__ == "HeaderTransformer"
    )
    header.pending = None
    header([first + "\n", "pass\n"])


def _enter_exit(ip: Any, cell_mod: Any, layer: Any) -> None:
    with cell_mod.inside(ip, [layer]):
        pass
