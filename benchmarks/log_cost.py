"""What an experiment log costs per record, and watch ``--log`` per cell, against another tree.

    python benchmarks/log_cost.py [--against DIR] [--rounds 5]

Each measurement runs in a fresh interpreter with ``PYTHONPATH`` set to the tree it times
(this checkout, and ``--against``: a checkout of another commit, e.g. ``git archive 8eba587
| tar -x -C /tmp/base``), alternating between the trees round by round; the best round of
each is printed. Measured:

- ``record``: one ``log.info("record %d lr=%g", i, 3e-4)`` inside ``experiment_log``, text
  and JSON lines, ns per record: the quickest of 20 batches of 1,000 (a tight loop on the
  local disk);
- ``block``: an empty ``with experiment_log(path):`` block (open, start and end records,
  close, report), µs: the quickest of 10 batches of 100;
- ``watch --log``: a watched ``x = 1`` cell in an in-process IPython shell (``--no-panel
  --scopes timed``), with ``--log`` minus without, µs per cell: the quickest of 10 batches
  of 100 cells.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent

_MEASURE = r"""
import contextlib, io, json, logging, os, sys, tempfile, time
folder = tempfile.mkdtemp()
os.environ["IPYTHONDIR"] = os.path.join(folder, "ipython")
import resmagic
from resmagic import experiment_log
out = {"tree": os.path.dirname(os.path.dirname(resmagic.__file__))}

def best_batch(run, batches, size):
    # The quickest batch: a shared machine preempts some batches, never makes one faster.
    times = []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        run(size)
        times.append((time.perf_counter_ns() - t0) / size)
    return min(times)

for fmt in ("text", "jsonl"):
    path = os.path.join(folder, f"run-{fmt}.log")
    with experiment_log(path, fmt=fmt, name=f"bench-{fmt}") as log:
        def records(n):
            for i in range(n):
                log.info("record %d lr=%g", i, 3e-4)
        records(2000)  # warm up: the file's first pages, the caches
        out[f"record {fmt} ns"] = best_batch(records, 20, 1000)
def blocks(n):
    for _ in range(n):
        with experiment_log(os.path.join(folder, "blocks.log"), name="bench-blocks"):
            pass
blocks(100)
out["block us"] = best_batch(blocks, 10, 100) / 1000
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
ip.run_line_magic("load_ext", "resmagic")
def per_cell(line):
    ip.run_line_magic("resmagic", line)
    def cells(n):
        for _ in range(n):
            ip.run_cell("x = 1", store_history=True)
    with contextlib.redirect_stdout(io.StringIO()):
        cells(100)
        best = best_batch(cells, 10, 100) / 1000
        ip.run_line_magic("resmagic", "watch off")
        ip.run_cell("pass", store_history=True)
    return best
log = os.path.join(folder, "watch.jsonl")
out["watch cell us"] = per_cell("watch on --no-panel --scopes timed")
out["watch --log cell us"] = per_cell(f"watch on --no-panel --scopes timed --log {log}")
print(json.dumps(out))
"""


def measure(tree: Path) -> dict[str, Any]:
    """One fresh interpreter timing ``tree``'s resmagic."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryDirectory() as cwd:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Time this tree and ``--against`` in alternating rounds; print the best of each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout to time beside this one")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    trees = {"this": HERE, **({"against": args.against.resolve()} if args.against else {})}
    best: dict[str, dict[str, float]] = {name: {} for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            result = measure(tree)
            timed = Path(str(result.pop("tree"))).resolve()
            assert timed == tree, f"timed {timed}, not {tree}"
            for key, value in result.items():
                best[name][key] = min(value, best[name].get(key, value))
    for figures in best.values():
        figures["watch --log extra us"] = figures["watch --log cell us"] - figures["watch cell us"]
    keys = list(best["this"])
    print("| measure | " + " | ".join(trees) + " |")
    print("|---|" + "---|" * len(trees))
    for key in keys:
        print(f"| {key} | " + " | ".join(f"{best[name][key]:.2f}" for name in trees) + " |")


if __name__ == "__main__":
    main()
