"""Where a hot path's microseconds go: ``perf_counter_ns`` wrapped around each of its steps.

:class:`Tracer` replaces functions and methods by name (in the benchmark process only, never
in ``resmagic/``) with wrappers that record a call tree: per path of step names, the calls,
the inclusive nanoseconds and those of the wrapped steps inside. A wrapper costs time of
its own, part of it inside the interval it measures (``inner``) and all of it inside its
caller's (``outer``); both are calibrated on an empty function and subtracted, so a step's
figure is what it costs unwrapped, within a few tens of nanoseconds per wrapped call.

Also the timing loop every profile script shares (:func:`per_block`: many short rounds, a
low percentile, as on a loaded machine) and a cProfile listing per block (:func:`cprofile`).
"""

from __future__ import annotations

import cProfile
import functools
import io
import pstats
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Path = tuple[str, ...]


@dataclass
class Node:
    """One step at one place in the call tree, summed over its calls."""

    calls: int = 0
    incl_ns: int = 0  # wrapper intervals, raw
    child_ns: int = 0  # the raw intervals of the wrapped steps called directly inside
    children: int = 0  # how many wrapped calls were made directly inside
    descendants: int = 0  # wrapped calls made anywhere inside


@dataclass
class Tracer:
    """Wraps steps by name and records their call tree (main thread only)."""

    nodes: dict[Path, Node] = field(default_factory=dict)
    inner_ns: float = 0.0
    outer_ns: float = 0.0
    _stack: list[list[Any]] = field(default_factory=list)
    _undo: list[tuple[Any, str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        """``fn`` timed as ``label`` wherever it is called from the main thread."""
        stack, nodes, clock = self._stack, self.nodes, time.perf_counter_ns
        main = threading.main_thread().ident

        def timed_step(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != main:  # the sampler thread: not this path's time
                return fn(*args, **kwargs)
            path = (*stack[-1][0], label) if stack else (label,)
            frame: list[Any] = [path, 0, 0, 0]
            stack.append(frame)
            t0 = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = clock() - t0
                stack.pop()
                node = nodes.get(path)
                if node is None:
                    node = nodes[path] = Node()
                node.calls += 1
                node.incl_ns += dt
                node.child_ns += frame[1]
                node.children += frame[2]
                node.descendants += frame[3]
                if stack:
                    up = stack[-1]
                    up[1] += dt
                    up[2] += 1
                    up[3] += 1 + frame[3]

        functools.update_wrapper(timed_step, fn)
        return timed_step

    def patch(self, owner: Any, name: str, label: str | None = None) -> None:
        """Replace ``owner.name`` (a module's function, a class's method) by its wrapper."""
        raw = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if raw is None:
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
            return
        label = label or f"{getattr(owner, '__name__', owner)}.{name}"
        if isinstance(raw, staticmethod):
            new: Any = staticmethod(self.wrap(raw.__func__, label))
        elif isinstance(raw, classmethod):
            new = classmethod(self.wrap(raw.__func__, label))
        else:
            new = self.wrap(raw, label)
        self._undo.append((owner, name, raw))
        setattr(owner, name, new)

    def unpatch(self) -> None:
        """Put back everything :meth:`patch` replaced, newest first."""
        while self._undo:
            owner, name, raw = self._undo.pop()
            setattr(owner, name, raw)

    def clear(self) -> None:
        """Forget what was recorded (keep the patches and the calibration)."""
        self.nodes.clear()

    def calibrate(self, n: int = 500, rounds: int = 200) -> None:
        """Measure what a wrapper adds inside its interval and to its caller's.

        Short rounds, the least of each: on a loaded machine most long rounds are preempted.
        """

        def empty() -> None:
            pass

        wrapped = self.wrap(empty, "(calibration)")
        inner, bare, full = [], [], []
        clock = time.perf_counter_ns
        for _ in range(rounds):
            self.clear()
            t0 = clock()
            for _ in range(n):
                wrapped()
            t1 = clock()
            for _ in range(n):
                empty()
            t2 = clock()
            inner.append(self.nodes[("(calibration)",)].incl_ns / n)
            full.append((t1 - t0) / n)
            bare.append((t2 - t1) / n)
        self.clear()
        self.inner_ns = min(inner)
        self.outer_ns = min(full) - min(bare)

    def corrected(self, node: Node) -> tuple[float, float]:
        """(inclusive, self) nanoseconds of ``node``, the wrappers' own time taken out."""
        incl = node.incl_ns - node.calls * self.inner_ns - node.descendants * self.outer_ns
        own = (
            node.incl_ns
            - node.child_ns
            - node.calls * self.inner_ns
            - node.children * (self.outer_ns - self.inner_ns)
        )
        return incl, own


def tree_rows(
    runs: list[dict[Path, Node]],
    tracer: Tracer,
    blocks: int,
    whole_ns: float | None = None,
    keep: float = 0.3,
) -> tuple[list[tuple[Path, float, float, float]], float]:
    """(path, calls, inclusive µs, self µs) per block, averaged over the quickest rounds.

    Each round is one tree (so its steps add up); the ``keep`` share of rounds with the
    least total time are averaged: the rounds the machine's other load left alone. With
    ``whole_ns`` (the block unwrapped) the wrappers' cost is solved for in place, so the
    tree adds up to it: a wrapper costs more among a real path's cache misses than on an
    empty function, and the difference would land on every step with wrapped steps
    inside. Also returns the wrapper cost per call used (ns).
    """

    def total(nodes: dict[Path, Node]) -> float:
        return sum(n.incl_ns for p, n in nodes.items() if len(p) == 1)

    chosen = sorted(runs, key=total)[: max(1, int(len(runs) * keep))]
    used = Tracer(inner_ns=tracer.inner_ns, outer_ns=tracer.outer_ns)
    if whole_ns is not None:
        # raw top-level time = the block's + each top-level call's inner part + each nested
        # call's whole wrapper: solve for the latter (the inner part is as calibrated).
        raw = statistics.mean(total(nodes) for nodes in chosen) / blocks
        top = statistics.mean(
            sum(n.calls for p, n in nodes.items() if len(p) == 1) for nodes in chosen
        )
        nested = statistics.mean(
            sum(n.calls for p, n in nodes.items() if len(p) > 1) for nodes in chosen
        )
        if nested > 0:
            used.outer_ns = max(
                (raw - whole_ns - top / blocks * tracer.inner_ns) / (nested / blocks),
                tracer.inner_ns,
            )
    paths: list[Path] = []
    for nodes in chosen:
        paths += [p for p in nodes if p not in paths]
    rows = []
    for path in paths:
        incl, own, calls_seen = [], [], []
        for nodes in chosen:
            node = nodes.get(path)
            i, s = used.corrected(node) if node is not None else (0.0, 0.0)
            incl.append(i)
            own.append(s)
            calls_seen.append(node.calls if node is not None else 0)
        rows.append(
            (
                path,
                statistics.mean(calls_seen) / blocks,
                statistics.mean(incl) / blocks / 1e3,
                statistics.mean(own) / blocks / 1e3,
            )
        )
    return rows, used.outer_ns


def trace(
    tracer: Tracer,
    block: Callable[[int], object],
    rounds: int,
    whole_s: float | None = None,
    round_s: float = 0.001,
) -> tuple[list[tuple[Path, float, float, float]], float]:
    """Run ``block(n)`` ``rounds`` times under ``tracer``: its per-block tree.

    ``n`` is what fits in ``round_s`` traced: short rounds, so that most of them run
    unpreempted on a loaded machine, and the quickest are kept (:func:`tree_rows`).
    """
    t0 = time.perf_counter()
    block(5)
    n = max(3, int(round_s / max((time.perf_counter() - t0) / 5, 1e-9)))
    block(n)  # warm
    runs = []
    for _ in range(rounds):
        tracer.clear()
        block(n)
        runs.append(dict(tracer.nodes))
    tracer.clear()
    return tree_rows(runs, tracer, n, None if whole_s is None else whole_s * 1e9)


def per_block(
    block: Callable[[int], float], rounds: int, round_s: float = 0.002
) -> dict[str, float]:
    """Seconds per block of ``block(n)`` (which returns its own elapsed seconds for n blocks).

    Many short rounds: the 10th percentile and the median of the per-block means.
    """
    pilot = max(block(20) / 20, 1e-8)
    n = max(5, int(round_s / pilot))
    block(n)
    got = [block(n) / n for _ in range(rounds)]
    return {
        "p10": statistics.quantiles(got, n=10)[0],
        "median": statistics.median(got),
        "min": min(got),
        "blocks": n,
    }


def alternate(
    blocks: dict[str, Callable[[int], float]], rounds: int, round_s: float = 0.001
) -> dict[str, dict[str, float]]:
    """:func:`per_block` of several variants, their rounds interleaved (rotating order)."""
    counts = {}
    for name, block in blocks.items():
        pilot = max(block(20) / 20, 1e-8)
        counts[name] = max(5, int(round_s / pilot))
        block(counts[name])
    got: dict[str, list[float]] = {name: [] for name in blocks}
    names = list(blocks)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            got[name].append(blocks[name](counts[name]) / counts[name])
    return {
        name: {
            "p10": statistics.quantiles(values, n=10)[0],
            "median": statistics.median(values),
            "min": min(values),
        }
        for name, values in got.items()
    }


def loop(setup: str, stmt: str, namespace: dict[str, Any] | None = None) -> Callable[[int], float]:
    """A function running ``stmt`` n times inline (after ``setup``), returning the seconds."""
    ns: dict[str, Any] = dict(namespace or {})
    ns["_clock"] = time.perf_counter
    exec(setup, ns)
    body = "\n".join("        " + line for line in stmt.splitlines())
    src = f"def _block(_n):\n    _t0 = _clock()\n    for _ in range(_n):\n{body}\n    return _clock() - _t0\n"
    exec(src, ns)
    fn: Callable[[int], float] = ns["_block"]
    fn(3)
    return fn


def cprofile(block: Callable[[int], object], blocks: int, top: int = 25, rounds: int = 15) -> str:
    """cProfile of ``block``: the ``top`` functions by own time, calls per block.

    ``rounds`` short profiles of ``blocks // rounds`` blocks each; a function's time is its
    least over them (a profile that the machine's other load preempted says nothing).
    """
    n = max(1, blocks // rounds)
    block(n)
    best: dict[str, tuple[float, float, float]] = {}
    total_calls: list[float] = []
    for _ in range(rounds):
        profiler = cProfile.Profile()
        profiler.enable()
        block(n)
        profiler.disable()
        stats: Any = pstats.Stats(profiler)
        calls = 0.0
        for (filename, line, name), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
            calls += ncalls
            where = filename.rsplit("/site-packages/", 1)[-1].rsplit("/resmagic/", 1)[-1]
            key = f"{where}:{line}({name})"
            old = best.get(key)
            if old is None or tottime < old[0]:
                best[key] = (tottime, cumtime, ncalls)
        total_calls.append(calls / n)
    rows = sorted(((t, c, k, name) for name, (t, c, k) in best.items()), reverse=True)
    out = io.StringIO()
    out.write(
        "| function | calls per block | own µs per block (least of the rounds) | cumulative µs |\n"
    )
    out.write("|---|---|---|---|\n")
    for tottime, cumtime, ncalls, name in rows[:top]:
        if name.startswith("<string>") and "_block" in name:
            continue  # the timing loop itself
        out.write(
            f"| `{name}` | {ncalls / n:.2f} | {tottime / n * 1e6:.2f} | {cumtime / n * 1e6:.2f} |\n"
        )
    out.write(f"\nfunction calls per block (all, cProfile): {statistics.median(total_calls):.1f}\n")
    return out.getvalue()


def render_tree(rows: list[tuple[Path, float, float, float]], whole_us: float) -> str:
    """The call tree as a markdown table: step (indented), calls, µs, share of the block."""
    lines = [
        "| step | calls per block | µs (inclusive) | µs (own) | share of the block |",
        "|---|---|---|---|---|",
    ]
    ordered = sorted(rows, key=lambda r: _order(r[0], rows))
    for path, calls, incl, own in ordered:
        indent = "· " * (len(path) - 1)
        share = incl / whole_us * 100 if whole_us > 0 else 0.0
        lines.append(
            f"| {indent}{path[-1]} | {calls:.2f} | {incl:.3f} | {own:.3f} | {share:.1f}% |"
        )
    top = sum(r[2] for r in rows if len(r[0]) == 1)
    lines.append(
        f"| (left between the steps: the loop, `with`, rounding) | | {whole_us - top:.3f} | | {(whole_us - top) / whole_us * 100 if whole_us else 0:.1f}% |"
    )
    lines.append(f"| **whole block, unwrapped** | | **{whole_us:.3f}** | | 100% |")
    return "\n".join(lines)


def _order(path: Path, rows: list[tuple[Path, float, float, float]]) -> tuple[int, ...]:
    first = [r[0] for r in rows]
    return tuple(
        first.index(path[: i + 1]) if path[: i + 1] in first else 0 for i in range(len(path))
    )


@contextmanager
def patched(tracer: Tracer) -> Iterator[Tracer]:
    """The tracer, its patches undone on the way out."""
    try:
        yield tracer
    finally:
        tracer.unpatch()
