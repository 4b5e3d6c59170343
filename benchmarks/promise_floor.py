"""The floor of ``%%timed``'s promises: a sketch that keeps them all, beside ``%%timed`` itself.

    python benchmarks/promise_floor.py [--rounds N] [--cells N]
    .venv-bench/bin/python benchmarks/promise_floor.py   # with autotime's row

benchmarks/cell_floor.py measures the design's hooks with a timing and a printed line: what
autotime does. ``%%timed`` promises more (README, DESIGN.md), and each promise has a
per-cell cost of its own. This sketch is not resmagic's code: it keeps every promise in the
fewest steps, written inline, so it is the floor of the promises, and the gap between it and
``%%timed`` is what resmagic's structure costs:

- Ctrl-C held back in each of the three hooks (issue 24 #3): the handler swapped in and out;
- the SIGKILL page (issue 24 #4): the cell's line (run id, cell number, code hash, scope,
  start) written to one slot of a shared mapping, then the flip, at start and at end;
- a row in the run store: a tuple queued for a writer thread that gathers 0.05 s and commits
  the rows in one ``executemany`` into the real schema (four indexes);
- the history and the per-label totals, "last time" looked up and remembered;
- wall and CPU time, and the line printed with last time.

One in-process shell with resmagic loaded (a ``%%m`` cell passes our header transformer
untouched: one dict lookup); autotime loaded for its rounds only, where it is installed;
variants interleaved in rounds, every round ending with both writers idle; medians of the
rounds over a bare cell. Then µs per cell inside each of resmagic's hooks for ``%%timed -q``
(each wrapped in a ``perf_counter_ns`` pair), and the sketch's steps alone (``timeit``).
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module; typeshed has no stub
import argparse
import hashlib
import itertools
import mmap
import os
import signal
import statistics
import tempfile
import threading
import time
from collections import deque
from json.encoder import encode_basestring_ascii as quote
from typing import Any

from cell_floor import _Hooks

_SLOT = 2016


def _noted(signum: int, frame: Any) -> None:
    """The Ctrl-C handler while a hook runs (the sketch notes nothing)."""


class _Writer:
    """A writer thread: rows gathered 0.05 s, then one ``executemany`` in one transaction."""

    def __init__(self, path: str) -> None:
        from resmagic.store.schema import connect

        self.conn = connect(path)
        self.rows: deque[tuple[Any, ...]] = deque()
        self.wake = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        threading.Thread(target=self._run, daemon=True).start()

    def put(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        if not self.wake.is_set():
            self.idle.clear()
            self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.wait()
            time.sleep(0.05)
            self.wake.clear()
            rows = [self.rows.popleft() for _ in range(len(self.rows))]
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(
                "INSERT INTO reports (run, session, notebook, cell_id, cell, code_sha, scope,"
                " label, status, started_at, duration_s, updated_at, extra)"
                " VALUES (?, 's', NULL, ?, ?, ?, 'timed', NULL, ?, ?, ?, ?, ?)",
                rows,
            )
            self.conn.execute("COMMIT")
            if not self.rows:
                self.idle.set()


class _Promises(_Hooks):
    """``%%m``: every promise of ``%%timed``, inline."""

    def __init__(self, shell: Any, folder: str) -> None:
        super().__init__(shell, True)
        self.writer = _Writer(os.path.join(folder, "store.db"))
        fd = os.open(os.path.join(folder, "page"), os.O_RDWR | os.O_CREAT, 0o600)
        os.pwrite(fd, b" " * 4096, 0)
        self.page = mmap.mmap(fd, 4096)
        self.header = b'{"resmagic": 1, "session": "s", "pid": 1}\n'
        self.slot = 0
        self.ids = itertools.count()
        self.history: deque[tuple[Any, ...]] = deque(maxlen=1000)
        self.totals: dict[str | None, list[float]] = {}
        self.last: dict[str, float] = {}
        self.run = ""
        self.line = b""

    def _hold(self) -> Any:
        return _signal.signal(signal.SIGINT, _noted)

    def _release(self, old: Any) -> None:
        _signal.signal(signal.SIGINT, old)

    def _write(self, text: bytes) -> None:
        slot = 1 - self.slot
        at = 64 + slot * _SLOT
        self.page[at : at + _SLOT] = text.ljust(_SLOT)
        self.page[0:1] = b"01"[slot : slot + 1]
        self.slot = slot

    def pre(self, info: Any) -> None:
        old = self._hold()
        try:
            raw = info.raw_cell
            self.sha = hashlib.sha256(raw.encode()).hexdigest()[:16]
            self.cell_id = getattr(info, "cell_id", None)
            self.run = f"abc{next(self.ids):x}"
            self.started = time.time()
            self.line = (
                f"[{quote(self.run)},{self.shell.execution_count},null,{quote(self.sha)},"
                f'"timed",null,{self.started!r},null]\n'
            ).encode()
            self._write(self.header + self.line)
            self.shell.ast_transformers.append(self)
        finally:
            self._release(old)

    def visit(self, node: Any) -> Any:
        old = self._hold()
        try:
            self.shell.ast_transformers.pop()
            self.t0 = (time.perf_counter(), time.process_time())
        finally:
            self._release(old)
        return node

    def post(self, result: Any) -> None:
        wall = time.perf_counter() - self.t0[0]
        cpu = time.process_time() - self.t0[1]
        old = self._hold()
        try:
            status = "ok" if result.success else "error"
            self.history.append((self.run, wall, cpu, status))
            total = self.totals.setdefault(None, [0, 0.0, 0.0])
            total[0] += 1
            total[1] += wall
            total[2] += cpu
            now = time.time()
            self.writer.put(
                (self.run, self.cell_id, self.shell.execution_count, self.sha, status,
                 self.started, wall, now, f'{{"cpu_s": {cpu!r}}}')
            )  # fmt: skip
            last = self.last.get(self.sha)
            also = "" if last is None else f" (last time {last * 1e3:.3g} ms)"
            print(f"timed  wall {wall * 1e3:.3g} ms  cpu {cpu * 1e3:.3g} ms{also}")
            self.last[self.sha] = wall
            self._write(self.header)
            self.shell.events.unregister("pre_run_cell", self.pre)
            self.shell.events.unregister("post_run_cell", self.post)
        finally:
            self._release(old)


def _settle(promises: _Promises) -> None:
    """Both writers idle: nothing of one round's cells runs in the next one's time."""
    from resmagic.store.recorder import recorder

    promises.writer.idle.wait(5)
    recorder.flush()


class _Autotime:
    """autotime, loaded for its rounds only (in the bench venv; absent elsewhere)."""

    def attach(self, shell: Any) -> None:
        shell.run_line_magic("load_ext", "autotime")

    def detach(self, shell: Any) -> None:
        shell.run_line_magic("unload_ext", "autotime")


class _Transformer:
    """A sketch's cleanup transformer, there for its rounds only."""

    def __init__(self, hooks: _Hooks) -> None:
        self.hooks = hooks

    def attach(self, shell: Any) -> None:
        shell.input_transformers_cleanup.append(self.hooks.transform)

    def detach(self, shell: Any) -> None:
        shell.input_transformers_cleanup.remove(self.hooks.transform)


def _alone(promises: _Promises) -> dict[str, float]:
    """µs per call of each promise's steps alone (``timeit``, best of 7)."""
    import io
    import timeit
    from contextlib import redirect_stdout

    info = type("Info", (), {"raw_cell": "%%m\npass", "cell_id": None})()
    sink = io.StringIO()

    def line() -> None:
        with redirect_stdout(sink):
            print(f"timed  wall {1.234e-3 * 1e3:.3g} ms  cpu {1.1e-3 * 1e3:.3g} ms (last 1 ms)")
        sink.seek(0)
        sink.truncate()

    steps: dict[str, Any] = {
        "Ctrl-C held back and let go (one hook)": lambda: promises._release(promises._hold()),
        "code hash (sha256 of the cell)": lambda: hashlib.sha256(info.raw_cell.encode()),
        "page: a line written to a slot, then the flip": lambda: promises._write(
            promises.header + promises.line
        ),
        "row queued for the writer thread": lambda: promises.writer.rows.append(
            (1, 2, 3, 4, 5, 6, 7, 8, 9)
        ),
        "wall + CPU clocks read (one of each)": lambda: (time.perf_counter(), time.process_time()),
        "the line printed": line,
    }
    promises.line = b'["abc1",1,null,"0123456789abcdef","timed",null,1.0,null]\n'
    got = {}
    for name, step in steps.items():
        timer = timeit.Timer(step)
        n = timer.autorange()[0]
        got[name] = min(timer.repeat(7, n)) / n * 1e6
        promises.writer.rows.clear()
    return got


_STEPS: tuple[tuple[str, str, str], ...] = (
    ("resmagic.ipython.cells.header", "HeaderTransformer", "__call__"),
    ("resmagic.ipython.cells.runner", "CellRunner", "pre_run_cell"),
    ("resmagic.ipython.cells.runner", "CellRunner", "visit"),
    ("resmagic.ipython.cells.stack", "Inside", "__enter__"),
    ("resmagic.ipython.runstore", "StoreHook", "opened"),
    ("resmagic.ipython.cells.runner", "CellRunner", "post_run_cell"),
    ("resmagic.ipython.cells.stack", "Inside", "__exit__"),
    ("resmagic.scopes.base", "_Running", "__exit__"),
    ("resmagic.ipython.runstore", "StoreHook", "closed"),
)


def _steps_of(shell: Any, src: str, rounds: int, cells: int) -> dict[str, float]:
    """µs per cell in each of resmagic's hooks (and the steps inside them) for ``src``.

    Each is wrapped in a ``perf_counter_ns`` pair (~0.2 µs added to it and to the step
    around it); median of the rounds. The hooks' figures include the steps under them.
    """
    import functools
    import importlib

    from IPython.utils.capture import capture_output

    spent: dict[str, int] = {}
    originals: list[tuple[Any, str, Any]] = []
    for module, cls, name in _STEPS:
        owner = getattr(importlib.import_module(module), cls)
        key = f"{cls}.{name}"
        func = getattr(owner, name)

        def timed_step(*args: Any, _f: Any = func, _k: str = key, **kwargs: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return _f(*args, **kwargs)
            finally:
                spent[_k] = spent.get(_k, 0) + time.perf_counter_ns() - t0

        originals.append((owner, name, func))
        setattr(owner, name, functools.wraps(func)(timed_step))
    per: dict[str, list[float]] = {}
    try:
        # The runner's hooks are bound methods registered at load: load again to wrap them.
        shell.run_line_magic("unload_ext", "resmagic")
        shell.run_line_magic("load_ext", "resmagic")
        with capture_output():
            for i in range(rounds + 2):
                spent.clear()
                for _ in range(cells):
                    shell.run_cell(src, store_history=False)
                if i >= 2:
                    for key, ns in spent.items():
                        per.setdefault(key, []).append(ns / cells / 1e3)
    finally:
        for owner, name, func in originals:
            setattr(owner, name, func)
    return {key: statistics.median(values) for key, values in per.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--cells", type=int, default=40)
    args = parser.parse_args()
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="resmagic-promises-ipython-")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell: Any = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "resmagic")
    promises = _Promises(shell, tempfile.mkdtemp(prefix="resmagic-promises-"))
    variants: list[tuple[str, Any, str]] = [
        ("bare cell", None, "pass"),
        (
            "%%m: hooks + timing + a line (autotime's work)",
            _Transformer(_Hooks(shell, True)),
            "%%m\npass",
        ),
        ("%%m: every promise of %%timed, inline", _Transformer(promises), "%%m\npass"),
        ("%%timed", None, "%%timed\npass"),
        ("%%timed -q", None, "%%timed -q\npass"),
    ]
    try:
        import autotime  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        print("(autotime is not installed here: its row is left out; see make bench's venv)")
    else:
        variants.insert(1, ("autotime (a bare cell with autotime loaded)", _Autotime(), "pass"))
    got: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    with capture_output():
        for i in range(args.rounds + 2):
            for name, extra, src in variants:
                if extra is not None:
                    extra.attach(shell)
                t0, c0 = time.perf_counter(), time.thread_time()
                for _ in range(args.cells):
                    shell.run_cell(src, store_history=False)
                wall = (time.perf_counter() - t0) / args.cells
                main_cpu = (time.thread_time() - c0) / args.cells
                if extra is not None:
                    extra.detach(shell)
                _settle(promises)
                if i >= 2:  # two rounds to warm up
                    got[name].append(wall)
                    cpu[name].append(main_cpu)
    bare, bare_cpu = got["bare cell"], cpu["bare cell"]
    print(f"bare cell: {statistics.median(bare) * 1e6:.1f} µs (median of {args.rounds} rounds)")
    print("| cell | over a bare cell, wall (µs) | main thread's CPU (µs) |\n|---|---|---|")
    for name, _, _ in variants[1:]:
        over = statistics.median(a - b for a, b in zip(got[name], bare, strict=True))
        over_cpu = statistics.median(a - b for a, b in zip(cpu[name], bare_cpu, strict=True))
        print(f"| {name} | {over * 1e6:+.1f} | {over_cpu * 1e6:+.1f} |")
    print("\n| `%%timed -q`: in resmagic's hooks | µs per cell |\n|---|---|")
    for name, us in _steps_of(shell, "%%timed -q\npass", args.rounds, args.cells).items():
        print(f"| {name} | {us:.1f} |")
    print("\n| the sketch's steps alone | µs per call |\n|---|---|")
    for name, us in _alone(promises).items():
        print(f"| {name} | {us:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
