"""The library form per block, beside plain timers and the raw reads it stands on (issue 26).

    python benchmarks/library.py [--before REF] [--quick] [--json FILE]

Each block variant (``with codetiming.Timer(logger=None): pass``, ``with timed("x"): pass``,
``with gpu_scope(): pass``, a bare ``perf_counter()`` pair, the raw ``/proc`` reads under
``gpu_scope``'s host row, ...) runs in fresh interpreters of this Python, all variants in
one process, in many short rounds whose order rotates, so a slow phase of the machine hits
every variant alike. A figure is the median over rounds of the mean per block (µs); the
ratio is to ``codetiming.Timer`` of the same runs. ``--before REF`` measures the resmagic of
git ref REF too (its ``resmagic/`` exported and put first on the child's PYTHONPATH), in
interpreters alternating with this tree's. ``make bench`` runs this (run.py, table 6).

``python benchmarks/library.py --child`` is the half that runs in the fresh interpreter: it
prints the rounds as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# (name, setup, statement): the statement is one block, run in a tight loop. Setup runs once
# per interpreter; a variant whose setup fails (an old tree without the keyword) is skipped.
# gpu_scope runs in interpreters of its own (GROUPS): its sampler thread lingers a second
# after each block and, on a loaded machine, holds the GIL while descheduled, which would
# stall the other variants' rounds.
VARIANTS: list[tuple[str, str, str]] = [
    (
        "perf_counter() pair (floor)",
        "from time import perf_counter",
        "perf_counter(); perf_counter()",
    ),
    (
        "codetiming.Timer(logger=None)",
        "from codetiming import Timer",
        "with Timer(logger=None): pass",
    ),
    ("contexttimer.Timer()", "from contexttimer import Timer as CTimer", "with CTimer(): pass"),
    (
        'timed("x", keep="totals")',
        "from resmagic import timed",
        'with timed("x", keep="totals"): pass',
    ),
    ('timed("x")', "from resmagic import timed", 'with timed("x"): pass'),
    ("bare function call f()", "def f(): pass", "f()"),
    ('@timed("f") f()', 'from resmagic import timed\n@timed("f")\ndef f(): pass', "f()"),
    (
        '@timed("f", keep="totals") f()',
        'from resmagic import timed\n@timed("f", keep="totals")\ndef f(): pass',
        "f()",
    ),
    ("gpu_scope() (CPU: host row)", "from resmagic import gpu_scope", "with gpu_scope(): pass"),
    ("time.process_time()", "from time import process_time", "process_time()"),
    ("time.thread_time()", "from time import thread_time", "thread_time()"),
    ("time.time()", "from time import time as now", "now()"),
    (
        "/proc/self/status read (VmHWM)",
        "import os\nfd = os.open('/proc/self/status', os.O_RDONLY)",
        "os.pread(fd, 8192, 0)",
    ),
    (
        "/proc/self/statm read",
        "import os\nfd = os.open('/proc/self/statm', os.O_RDONLY)",
        "os.pread(fd, 128, 0)",
    ),
    (
        "/proc/self/clear_refs write (VmHWM reset)",
        "import os\nfd = os.open('/proc/self/clear_refs', os.O_WRONLY)",
        "os.write(fd, b'5')",
    ),
]

GPU = "gpu_scope() (CPU: host row)"
GROUPS = {"timers": [v[0] for v in VARIANTS if v[0] != GPU], "gpu_scope": [GPU]}
PEER = "codetiming.Timer(logger=None)"
BARE_CALL = "bare function call f()"
DECORATED = ('@timed("f") f()', '@timed("f", keep="totals") f()')
PROBE_FLOOR = (
    ("/proc/self/status read (VmHWM)", 1),
    ("/proc/self/statm read", 2),
    ("/proc/self/clear_refs write (VmHWM reset)", 1),
)

# Issue 26's targets: seconds per block ("s"), or a multiple of codetiming's block.
TARGETS: dict[str, tuple[float, str]] = {
    'timed("x", keep="totals")': (2.0, "×"),
    'timed("x")': (3e-6, "s"),
    '@timed("f") f()': (3e-6, "s"),  # over the bare call
    '@timed("f", keep="totals") f()': (2.0, "×"),  # over the bare call
    "gpu_scope() (CPU: host row)": (20e-6, "s"),
}

_TEMPLATE = """
def block(_n, _clock=_perf_counter):
    _t0 = _clock()
    for _ in range(_n):
        {stmt}
    return _clock() - _t0
"""


# -- the child: one fresh interpreter ---------------------------------------------------------


def _compile(setup: str, stmt: str) -> Callable[[int], float]:
    namespace: dict[str, Any] = {"_perf_counter": time.perf_counter}
    exec(setup, namespace)
    exec(_TEMPLATE.format(stmt=stmt), namespace)
    fn: Callable[[int], float] = namespace["block"]
    fn(10)  # fails here, not mid-round, if the variant does not run on this tree
    return fn


def child(group: str, rounds: int, round_s: float) -> dict[str, Any]:
    """Seconds per block of the group's variants, one entry per round, rotating each round."""
    import resmagic

    runs: dict[str, Callable[[int], float]] = {}
    skipped: dict[str, str] = {}
    for name, setup, stmt in VARIANTS:
        if name not in GROUPS[group]:
            continue
        try:
            runs[name] = _compile(setup, stmt)
        except Exception as exc:  # e.g. keep= on a tree that predates it
            skipped[name] = f"{type(exc).__name__}: {exc}"
    # Blocks per round: what fits in round_s (from a pilot), at least 5.
    counts = {}
    for name, fn in runs.items():
        pilot = max(fn(50) / 50, 1e-8)
        counts[name] = max(5, int(round_s / pilot))
        fn(counts[name])  # warm: caches, the history deque, the sampler thread
    names = list(runs)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            seconds[name].append(runs[name](counts[name]) / counts[name])
    return {
        "resmagic_from": str(Path(resmagic.__file__).parent),
        "gc": gc.isenabled(),
        "seconds": seconds,
        "blocks": counts,
        "skipped": skipped,
    }


# -- the driver -------------------------------------------------------------------------------


@dataclass
class LibraryPlan:
    interpreters: int = 3  # per tree and group, alternating with the other trees'
    rounds: int = 150  # per interpreter: many short rounds, so most miss the other load
    round_s: float = 0.001  # per variant per round


QUICK = LibraryPlan(interpreters=1, rounds=20)


def _run_child(plan: LibraryPlan, group: str, env: dict[str, str] | None) -> dict[str, Any]:
    full = dict(os.environ, **(env or {}))
    out = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            *("--child", group, "--rounds", str(plan.rounds), "--round-s", str(plan.round_s)),
        ],
        env=full,
        capture_output=True,
        text=True,
        check=True,
        cwd=str(HERE),
    )
    return dict(json.loads(out.stdout))


def measure(plan: LibraryPlan, trees: list[tuple[str, dict[str, str] | None]]) -> dict[str, Any]:
    """Every tree's rounds, pooled over its interpreters: ``{"trees": {label: ...}}``."""
    started = time.monotonic()
    load_start = list(os.getloadavg())
    pooled: dict[str, dict[str, Any]] = {}
    for i in range(plan.interpreters):
        for group in GROUPS:
            for label, env in trees:
                say(f"[library] {label}, {group}, interpreter {i + 1}/{plan.interpreters}")
                got = _run_child(plan, group, env)
                slot = pooled.setdefault(
                    label, {"resmagic_from": got["resmagic_from"], "seconds": {}, "skipped": {}}
                )
                slot["skipped"].update(got["skipped"])
                for name, rounds in got["seconds"].items():
                    slot["seconds"].setdefault(name, []).extend(rounds)
    return {
        "trees": pooled,
        "plan": vars(plan),
        "elapsed_s": time.monotonic() - started,
        "load_average": {"start": load_start, "end": list(os.getloadavg())},
    }


# -- the table --------------------------------------------------------------------------------


def say(text: str) -> None:
    """Progress, on stderr (stdout is the table)."""
    print(text, file=sys.stderr, flush=True)


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _low(values: list[float]) -> float:
    """The 10th percentile: what a round gets when the machine leaves it alone."""
    return statistics.quantiles(values, n=10)[0] if len(values) > 1 else values[0]


def figures(seconds: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per variant: median and 10th percentile per block; decorated calls net of a bare call."""
    out: dict[str, dict[str, float]] = {}
    for name, rounds in seconds.items():
        out[name] = {"median": _med(rounds), "p10": _low(rounds)}
    bare = seconds.get(BARE_CALL)
    for name in DECORATED:
        if name in seconds and bare is not None:
            # Paired by round: a slow round slows the bare call of that round too.
            net = [a - b for a, b in zip(seconds[name], bare, strict=False)]
            out[name]["net_median"] = _med(net)
            out[name]["net_p10"] = _low(net)
    if all(name in seconds for name, _ in PROBE_FLOOR):
        floor = [
            sum(seconds[name][i] * times for name, times in PROBE_FLOOR)
            for i in range(min(len(seconds[name]) for name, _ in PROBE_FLOOR))
        ]
        out["gpu_scope probes' floor (status + 2 statm + clear_refs)"] = {
            "median": _med(floor),
            "p10": _low(floor),
        }
    return out


def _us(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds * 1e6:.3f}" if abs(seconds) < 10e-6 else f"{seconds * 1e6:.1f}"


def _target(name: str, row: tuple[float, float], peer: tuple[float, float]) -> tuple[str, str]:
    """The target and whether it is met, by the median and by the 10th percentile."""
    target = TARGETS.get(name)
    if target is None:
        return "", ""
    limit, unit = target
    if unit == "×":
        met = [value <= limit * ref for value, ref in zip(row, peer, strict=True)]
        text = f"≤ {limit:g}× codetiming"
    else:
        met = [value <= limit for value in row]
        text = f"≤ {limit * 1e6:g} µs"
    return text, " / ".join("yes" if m else "**no**" for m in met)


def table(results: dict[str, Any]) -> str:
    """The markdown table: this tree first, then each other tree's figures and ratio."""
    trees = results["trees"]
    labels = list(trees)
    figs = {label: figures(trees[label]["seconds"]) for label in labels}
    head = ["block", "µs per block: median (10th percentile)", "÷ codetiming"]
    head += [f"{label}: µs" for label in labels[1:]]
    head += [f"{label}: ÷ codetiming" for label in labels[1:]]
    head += ["target (issue 26)", "met? (median / 10th pct.)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    mine = figs[labels[0]]
    for name in list(mine):
        row = _row(name, mine)
        cells = [name + (" (over a bare call)" if name in DECORATED else "")]
        cells += [_pair(row), _ratio(row, mine)]
        others = [figs[label] for label in labels[1:]]
        cells += [_pair(_row(name, o)) if name in o else "n/a" for o in others]
        cells += [_ratio(_row(name, o), o) if name in o else "" for o in others]
        peer = _row(PEER, mine) if PEER in mine else None
        cells += list(_target(name, row, peer)) if peer is not None else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _row(name: str, figs: dict[str, dict[str, float]]) -> tuple[float, float]:
    f = figs[name]
    if "net_median" in f:
        return f["net_median"], f["net_p10"]
    return f["median"], f["p10"]


def _pair(row: tuple[float, float]) -> str:
    return f"{_us(row[0])} ({_us(row[1])})"


def _ratio(row: tuple[float, float], figs: dict[str, dict[str, float]]) -> str:
    if PEER not in figs:
        return ""
    peer = _row(PEER, figs)
    ratios = [value / ref for value, ref in zip(row, peer, strict=True)]
    return " (".join(f"{r:.2f}×" if r < 10 else f"{r:.0f}×" for r in ratios) + ")"


def notes(results: dict[str, Any]) -> str:
    """Where each tree's resmagic came from, what was skipped, rounds and load."""
    lines = []
    for label, tree in results["trees"].items():
        n = len(next(iter(tree["seconds"].values()), []))
        lines.append(f"- {label}: resmagic from `{tree['resmagic_from']}`, {n} rounds")
        for name, why in tree.get("skipped", {}).items():
            lines.append(f"  - not measured there: {name} ({why})")
    load = results.get("load_average", {})
    if load:
        start = "/".join(f"{v:.2f}" for v in load["start"])
        end = "/".join(f"{v:.2f}" for v in load["end"])
        lines.append(f"- load average (1, 5, 15 min) at start {start}, at end {end}")
    lines.append(f"- took {results.get('elapsed_s', 0):.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", choices=list(GROUPS), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=LibraryPlan.rounds)
    parser.add_argument("--round-s", type=float, default=LibraryPlan.round_s)
    parser.add_argument("--interpreters", type=int, default=LibraryPlan.interpreters)
    parser.add_argument("--before", metavar="REF", help="also measure the resmagic of this ref")
    parser.add_argument("--quick", action="store_true", help="one interpreter, 15 rounds")
    parser.add_argument("--json", metavar="FILE", help="save the raw results")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.rounds, args.round_s)))
        return 0
    plan = QUICK if args.quick else LibraryPlan(args.interpreters, args.rounds, args.round_s)
    results = measure(plan, trees(args.before))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print()
    print(notes(results))
    return 0


def trees(before: str | None) -> list[tuple[str, dict[str, str] | None]]:
    """This tree, and the resmagic of ``before`` (exported from git) when given."""
    out: list[tuple[str, dict[str, str] | None]] = [("this tree", None)]
    if before:
        sys.path.insert(0, str(HERE))
        from kernel import export
        from machine import git

        short = git("rev-parse", "--short", before)
        label = f"before ({before})" if short == before else f"before ({before}, {short})"
        out.append((label, {"PYTHONPATH": export(before)}))
    return out


if __name__ == "__main__":
    raise SystemExit(main())
