"""The run store's steps in a measured cell, in place: main-thread CPU per step, writer CPU.

    python benchmarks/store_tree.py [--ref REF] [--cells N] [CELL]

A real in-process ``InteractiveShell`` (fresh IPYTHONDIR: the store on, as in a kernel),
``%load_ext resmagic``, ``CELL`` (default ``%%timed -q``) run 300 times, then ``--cells``
times with ``thread_time_ns`` around each store step (``StoreHook.opened``/``closed`` and
what they call, ``bus._to_store``). Each wrapper adds ~0.7 µs (printed) to its step and its
callers: read the large steps, and compare trees in one session. The writer thread's CPU
per cell comes from its own clock, flushes included. ``--ref REF`` runs the same in the
resmagic of git ref REF (exported, first on the PYTHONPATH).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

STEPS = [
    ("resmagic.store.statefile", "StateFile", "_write", "page write (both boundaries)"),
    ("resmagic.store.statefile", None, "_line", "page line"),
    ("resmagic.store.recorder", "Recorder", "started", "Recorder.started"),
    ("resmagic.store.recorder", "Recorder", "ended", "Recorder.ended"),
    ("resmagic.store.recorder", "Recorder", "record", "Recorder.record"),
    ("resmagic.ipython.runstore", "StoreHook", "_cell", "StoreHook._cell"),
    ("resmagic.store.recent", "Recent", "get", "Recent.get"),
    ("resmagic.store.recent", "Recent", "remember", "Recent.remember"),
    ("resmagic.bus", None, "_to_store", "bus._to_store (all of record)"),
]


def _writer_ns() -> int:
    for thread in threading.enumerate():
        if thread.name == "resmagic-store" and thread.ident is not None:
            return time.clock_gettime_ns(time.pthread_getcpuclockid(thread.ident))
    return 0


def measure(cell: str, cells: int) -> None:
    """Print the table for ``cell`` in this interpreter's resmagic."""
    import importlib

    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="resmagic-storetree-")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell: Any = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "resmagic")
    spent: dict[str, int] = {}
    tt = time.thread_time_ns

    def wrap(owner: Any, name: str, label: str) -> None:
        inner: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = tt()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0) + tt() - t0

        setattr(owner, name, timed)

    class _Empty:
        @staticmethod
        def f() -> None:
            return None

    wrap(_Empty, "f", "calibration")
    for _ in range(20_000):
        _Empty.f()
    calibration = spent.pop("calibration") / 20_000
    with capture_output(display=True):
        for _ in range(300):
            shell.run_cell(cell, store_history=False)
        from resmagic.ipython.extension import _sessions
        from resmagic.store.recorder import recorder

        runner = _sessions[id(shell)][0].runner
        for module, owner, name, label in STEPS:
            found = importlib.import_module(module)
            wrap(getattr(found, owner) if owner else found, name, label)
        for hook, label in (("on_open", "StoreHook.opened (all)"), ("on_close", "closed (all)")):
            wrap(runner, hook, label)
        recorder.flush()
        main0, writer0 = tt(), _writer_ns()
        for _ in range(cells):
            shell.run_cell(cell, store_history=False)
        main = tt() - main0
        recorder.flush()
        writer = _writer_ns() - writer0
    import resmagic

    print(f"resmagic from {Path(resmagic.__file__).parent}; {cell!r}; {cells} cells")
    print(f"wrapper: {calibration / 1e3:.2f} µs per wrapped call (not taken out)\n")
    print("| step | µs per cell |\n|---|---|")
    for label, ns in spent.items():
        print(f"| {label} | {ns / cells / 1e3:.2f} |")
    print(f"| the store's writer thread, CPU | {writer / cells / 1e3:.2f} |")
    print(f"| the whole cell, main thread CPU | {main / cells / 1e3:.1f} |")


def main() -> None:
    """Run in this tree, or re-run in an exported ref."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cell", nargs="?", default="%%timed -q\npass")
    parser.add_argument("--cells", type=int, default=3000)
    parser.add_argument("--ref", metavar="REF")
    args = parser.parse_args()
    if args.ref:
        from kernel import export

        env = {**os.environ, "PYTHONPATH": export(args.ref)}
        subprocess.run(
            [sys.executable, __file__, args.cell, "--cells", str(args.cells)],
            env=env,
            cwd="/tmp",
            check=True,
        )
        return
    measure(args.cell.replace("\\n", "\n"), args.cells)


if __name__ == "__main__":
    main()
