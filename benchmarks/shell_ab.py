"""Per-cell µs of resmagic's cell kinds in in-process shells, this tree against a git ref.

    python benchmarks/shell_ab.py [--against REF] [--store-off] [--procs N] [--rounds N]

Each interpreter makes a fresh ``InteractiveShell`` (its own IPYTHONDIR), ``%load_ext
resmagic`` (with ``--store-off``: then ``settings.store = ""``, no run store), and times
``run_cell(..., store_history=False)`` for every variant, rounds interleaved, output
swallowed. Interpreters of the two trees alternate (``--against REF``: that ref's
``resmagic/`` exported and put first on the child's PYTHONPATH), so a loaded machine slows
both alike. Printed per variant and tree: the median over rounds of (variant - bare cell of
the same round), and the difference of the 10th percentiles.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# (label, line run untimed before the variant's cells, cell)
VARIANTS: list[tuple[str, str | None, str]] = [
    ("bare cell", "%resmagic watch off", "pass"),
    ("%%timed", None, "%%timed\npass"),
    ("%%timed -q", None, "%%timed -q\npass"),
    ("%%gpu_scope --no-panel", None, "%%gpu_scope --no-panel\npass"),
    ("watch on (gpu_scope, timed)", "%resmagic watch on --no-panel", "pass"),
    ("watch on --scopes timed", "%resmagic watch on --scopes timed --no-panel", "pass"),
    ("plain cell, resmagic loaded", "%resmagic watch off", "x = 1"),
]


Timing = tuple[float, float, float]
"""Per cell over a run of cells: wall s, this thread's CPU s, the other threads' CPU s."""


def measure(rounds: int, store_off: bool, round_s: float | None = None) -> dict[str, list[Timing]]:
    """Time every variant in this interpreter, rounds interleaved; per variant, each round's.

    ``round_s``: cells per round sized to about this many seconds per variant (None: 40).
    Also used by benchmarks/store_cells.py (the CPU split per thread).
    """
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="resmagic-ab-ipython-")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell: Any = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "resmagic")
    if store_off:
        from resmagic.config import settings

        settings.store = ""
    got: dict[str, list[Timing]] = {label: [] for label, _, _ in VARIANTS}
    counts: dict[str, int] = {}
    run: Any = shell.run_cell

    def cells(src: str, n: int) -> Timing:
        w0, p0, t0 = time.perf_counter(), time.process_time(), time.thread_time()
        for _ in range(n):
            run(src, store_history=False)
        w, p, t = time.perf_counter() - w0, time.process_time() - p0, time.thread_time() - t0
        return w / n, t / n, (p - t) / n

    with capture_output(display=True):
        for label, before, src in VARIANTS:  # warm up every path once
            if before:
                run(before, store_history=False)
            first = cells(src, 20)[0]
            counts[label] = 40 if round_s is None else max(5, int(round_s / first))
        for r in range(rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for label, before, src in order:
                if before:
                    run(before, store_history=False)
                got[label].append(cells(src, counts[label]))
        run("%resmagic watch off", store_history=False)
    return got


def child(rounds: int, store_off: bool) -> None:
    """Print one JSON line: each variant's wall seconds per cell, per round."""
    got = measure(rounds, store_off)
    print(json.dumps({label: [t[0] for t in values] for label, values in got.items()}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="git ref timed in alternating interpreters")
    parser.add_argument("--store-off", action="store_true", help='settings.store = ""')
    parser.add_argument("--procs", type=int, default=3, help="interpreters per tree")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per interpreter")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.rounds, args.store_off)
        return 0
    trees: list[tuple[str, dict[str, str]]] = [("this tree", {})]
    if args.against:
        from kernel import export

        trees.append((args.against, {"PYTHONPATH": export(args.against)}))
    results: dict[str, dict[str, list[float]]] = {name: {} for name, _ in trees}
    argv = [sys.executable, __file__, "--child", "--rounds", str(args.rounds)]
    argv += ["--store-off"] if args.store_off else []
    for _ in range(args.procs):
        for name, env in trees:
            out = subprocess.run(
                argv, env={**os.environ, **env}, capture_output=True, text=True, check=True
            ).stdout
            got: dict[str, list[float]] = json.loads(out.strip().splitlines()[-1])
            for label, values in got.items():
                results[name].setdefault(label, []).extend(values)
    store = "off" if args.store_off else "on"
    print(f"run store {store}; load average {os.getloadavg()}; {args.procs} interpreters per tree")
    print(f"× {args.rounds} rounds of 40 cells, alternating\n")
    print("| cell | " + " | ".join(f"{n}: over bare, median (p10 diff)" for n, _ in trees) + " |")
    print("|---|" + "---|" * len(trees))
    for label, _, _ in VARIANTS:
        row = []
        for name, _ in trees:
            values, bare = results[name][label], results[name]["bare cell"]
            over = statistics.median(a - b for a, b in zip(values, bare, strict=True))
            p10 = _p10(values) - _p10(bare)
            row.append(f"{over * 1e6:+.1f} ({p10 * 1e6:+.1f})")
        print(f"| `{label}` | " + " | ".join(row) + " |")
    bare_row = " | ".join(f"{_p10(results[n]['bare cell']) * 1e6:.1f} µs p10" for n, _ in trees)
    print(f"| bare cell itself | {bare_row} |")
    return 0


def _p10(values: list[float]) -> float:
    return float(statistics.quantiles(values, n=10)[0])


if __name__ == "__main__":
    raise SystemExit(main())
