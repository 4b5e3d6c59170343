"""Where a ``%%timed`` cell's and a watched cell's microseconds go, in an in-process shell.

    python benchmarks/profile_shell.py [--rounds N] [--store-off] [--no-cprofile]

A real ``InteractiveShell`` of this interpreter (fresh IPYTHONDIR, so the run store is on
in a new profile, as in a kernel), ``%load_ext resmagic``, then nested
``run_cell(..., store_history=False)`` calls with their output swallowed, as
benchmarks/inkernel.py runs them in a kernel. Prints per cell: the time over a bare cell
(variants interleaved, many short rounds), the call tree of our steps and IPython's around
them (benchmarks/tracer.py), and the cProfile listing. In a terminal shell a report is
printed; in a kernel it is a ``display_data`` message (more costly): kernel figures are
``benchmarks/profile_cells.py``'s.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tracer import Tracer, cprofile, render_tree, trace

NOOP = '''
from IPython.core.magic import register_cell_magic as _register_cell_magic
@_register_cell_magic
def noop(line, cell):
    """A cell magic that does nothing: IPython's own floor for any cell magic."""
'''

# (label, line run untimed before the round, cell)
VARIANTS: list[tuple[str, str | None, str]] = [
    ("bare cell", "%resmagic watch off", "pass"),
    ("%%noop (IPython's floor for a cell magic)", None, "%%noop\npass"),
    ("%%timed", None, "%%timed\npass"),
    ("%%timed -q", None, "%%timed -q\npass"),
    ("%%gpu_scope --no-panel", None, "%%gpu_scope --no-panel\npass"),
    ("watch on (gpu_scope, timed)", "%resmagic watch on", "pass"),
    ("watch on --scopes timed", "%resmagic watch on --scopes timed", "pass"),
]

CPROFILE = True
"""``--no-cprofile``: no cProfile listings."""
STORE_OFF = False
"""``--store-off``: ``settings.store = ""`` after every ``%load_ext`` (no run store)."""


def load(shell: Any) -> None:
    """``%load_ext resmagic``, then the run store off when asked."""
    shell.run_line_magic("load_ext", "resmagic")
    if STORE_OFF:
        from resmagic.config import settings

        settings.store = ""


def patch_shell(t: Tracer) -> None:
    """Our cell steps and IPython's around them, named by what they do."""
    from IPython.core.events import EventManager
    from IPython.core.interactiveshell import InteractiveShell

    import resmagic.bus as bus
    import resmagic.ipython.cells.options as layers
    import resmagic.ipython.cells.runner as runner
    import resmagic.ipython.cells.stack as cell
    import resmagic.ipython.runstore as runstore
    import resmagic.ipython.views.notes as notes
    import resmagic.ipython.watch as watch
    import resmagic.scopes.base as base
    import resmagic.store.recorder as recorder
    from resmagic.ipython.cells.header import HeaderTransformer
    from resmagic.ipython.views.output import ReportOutput
    from resmagic.store.recent import Recent

    t.patch(InteractiveShell, "run_cell", "IPython: run_cell (the whole cell)")
    t.patch(InteractiveShell, "transform_cell", "IPython: transform_cell")
    t.patch(InteractiveShell, "should_run_async", "IPython: should_run_async (transforms again)")
    t.patch(InteractiveShell, "transform_ast", "IPython: transform_ast (AST hooks)")
    t.patch(EventManager, "trigger", "IPython: events.trigger")
    t.patch(HeaderTransformer, "__call__", "header transformer (%% line to a comment)")
    t.patch(HeaderTransformer, "take", "header.take (match the pending header)")
    t.patch(layers.LayerFactory, "layer", "layer(): option line parsed (cached) + build")
    t.patch(layers.LayerFactory, "_parse", "option parse (split + cached argparse)")
    t.patch(layers.LayerFactory, "build", "LayerFactory.build (scope + Layer)")
    t.patch(layers.LayerFactory, "expand", "expand $vars in the option line")
    t.patch(runner.CellRunner, "arm", "runner.arm (register cell events + AST hook)")
    t.patch(runner.CellRunner, "pre_run_cell", "pre_run_cell: push the frame")
    t.patch(runner.CellRunner, "visit", "AST hook: enter the scopes")
    t.patch(runner.CellRunner, "post_run_cell", "post_run_cell: close the frame")
    t.patch(runner.CellRunner, "_disarm_if_idle", "runner.disarm (unregister events)")
    t.patch(runner, "running_cell", "running_cell (execution count)")
    t.patch(runner.CellRunner, "_watches", "watch: is this cell watched?")
    t.patch(cell, "_enter", "enter one layer's scope")
    t.patch(base._Running, "__exit__", "exit one layer's scope")
    t.patch(cell, "_render", "render every layer's report")
    t.patch(notes.Notes, "show_text", "text report (%%timed)")
    t.patch(notes, "render_report", "render_report (summary text)")
    t.patch(notes.Notes, "holder_lines", "held-by line")
    t.patch(ReportOutput, "show", "output.show (print / display)")
    t.patch(ReportOutput, "reset", "output.reset")
    t.patch(ReportOutput, "cell_ended", "output.cell_ended")
    t.patch(runstore.StoreHook, "opened", "store hook: cell opened (running row)")
    t.patch(runstore.StoreHook, "closed", "store hook: cell closed")
    t.patch(runstore.StoreHook, "_cell", "store hook: CellRun for the cell (code sha)")
    t.patch(runstore.StoreHook, "last_time", "store hook: last time (text)")
    t.patch(runstore.StoreHook, "current", "store hook: current cell (recorder.context)")
    t.patch(Recent, "get", "recent runs: get")
    t.patch(Recent, "remember", "recent runs: remember")
    t.patch(recorder.Recorder, "record", "recorder.record (queue the report)")
    t.patch(recorder.Recorder, "started", "recorder.started")
    t.patch(recorder.Recorder, "ended", "recorder.ended")
    t.patch(recorder.Recorder, "previous", "recorder.previous (look up last run)")
    t.patch(recorder.Recorder, "writer", "recorder.writer")
    t.patch(bus, "_to_store", "bus: to the store")
    t.patch(watch.Watcher, "layers", "watch: layers for the cell")
    t.patch(watch.WatchOutput, "__init__", "watch: WatchOutput (panel, render hook)")
    t.patch(watch.WatchOutput, "render", "watch: render the compact line")
    t.patch(watch, "compact_line", "watch: compact_line")
    t.patch(notes.Notes, "panel", "panel available? (imports ipywidgets check)")


def _cells(shell: Any, src: str, n: int) -> float:
    run = shell.run_cell
    t0 = time.perf_counter()
    for _ in range(n):
        run(src, store_history=False)
    return time.perf_counter() - t0


def per_cell(shell: Any, rounds: int, round_s: float = 0.004) -> dict[str, list[float]]:
    """Seconds per cell of every variant, rounds interleaved (as inkernel.per_cell)."""
    from IPython.utils.capture import capture_output

    counts: dict[str, int] = {}
    got: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
    with capture_output(display=True):
        for label, before, src in VARIANTS:
            if before:
                shell.run_cell(before, store_history=False)
            pilot = _cells(shell, src, 10) / 10
            counts[label] = max(3, int(round_s / pilot))
        for r in range(rounds):
            for label, before, src in VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]:
                if before:
                    shell.run_cell(before, store_history=False)
                got[label].append(_cells(shell, src, counts[label]) / counts[label])
        shell.run_cell("%resmagic watch off", store_history=False)
    return got


def make_shell() -> Any:
    """A fresh in-process shell (its own IPYTHONDIR, so its own run store), resmagic loaded."""
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="resmagic-profile-ipython-")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell(NOOP, store_history=False)
    return shell


def main(rounds: int) -> None:
    """Print the per-cell table, the trees and the cProfile listings."""
    tracer = Tracer()
    tracer.calibrate()
    shell = make_shell()
    import profile_library

    load(shell)
    import resmagic

    print(
        f"resmagic from {Path(resmagic.__file__).parent}; load average {os.getloadavg()};"
        f" run store {'off' if STORE_OFF else 'on'}\n"
    )
    seconds = per_cell(shell, rounds)
    bare = seconds["bare cell"]
    whole = {}
    print(
        "| cell | µs per cell: median (10th pct.) | over a bare cell: median of paired rounds (difference of 10th pct.) |"
    )
    print("|---|---|---|")
    for label, values in seconds.items():
        diffs = [a - b for a, b in zip(values, bare, strict=True)]
        p10 = statistics.quantiles(values, n=10)[0]
        whole[label] = p10
        over = statistics.median(diffs) * 1e6
        print(
            f"| `{label}` | {statistics.median(values) * 1e6:.1f} ({p10 * 1e6:.1f}) |"
            f" {over:+.1f} ({(p10 - statistics.quantiles(bare, n=10)[0]) * 1e6:+.1f}) |"
        )
    print()

    # Patched, then loaded again: the runner registers bound methods of these classes.
    shell.run_line_magic("unload_ext", "resmagic")
    patch_shell(tracer)
    profile_library.patch_timed(tracer)
    profile_library.time_shim(tracer)
    profile_library.patch_gpu(tracer)
    if tracer.missing:
        print(f"not in this tree (not wrapped): {', '.join(tracer.missing)}\n")
    load(shell)
    from IPython.utils.capture import capture_output

    for label, before, src in VARIANTS:
        if label.startswith("%%noop"):
            continue

        def block(n: int, src: str = src) -> float:
            return _cells(shell, src, n)

        with capture_output(display=True):
            if before:
                shell.run_cell(before, store_history=False)
            # The wrappers' cost as calibrated on an empty function (not solved for, as in the
            # library profile: a cell's cold caches vary more than its steps): the last row
            # says what is left, the cell outside our steps and IPython's wrapped ones.
            rows, _ = trace(tracer, block, rounds=rounds, round_s=0.004)
        print(
            f"### `{label}`: {whole[label] * 1e6:.1f} µs per cell (10th percentile); wrappers"
            f" taken out at {tracer.inner_ns:.0f}/{tracer.outer_ns:.0f} ns per call\n"
        )
        print(render_tree(rows, whole[label] * 1e6))
        print()
    # The hooks registered while patched hold the wrappers: register them afresh, unwrapped.
    shell.run_line_magic("unload_ext", "resmagic")
    tracer.unpatch()
    if not CPROFILE:
        return
    load(shell)
    for label, before, src in VARIANTS:
        if label == "bare cell" or label.startswith("%%noop") or label == "%%timed -q":
            continue
        with capture_output(display=True):
            if before:
                shell.run_cell(before, store_history=False)
            listing = cprofile(_block(shell, src), 300, top=30)
        print(f"### cProfile: `{label}` (300 cells)\n\n{listing}")


def _block(shell: Any, src: str) -> Callable[[int], float]:
    def block(n: int) -> float:
        return _cells(shell, src, n)

    return block


if __name__ == "__main__":
    import argparse

    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--rounds", type=int, default=15, help="rounds per variant")
    cli.add_argument("--store-off", action="store_true", help='settings.store = "" (no run store)')
    cli.add_argument("--no-cprofile", action="store_true", help="no cProfile listings")
    args = cli.parse_args()
    STORE_OFF, CPROFILE = args.store_off, not args.no_cprofile
    main(args.rounds)
