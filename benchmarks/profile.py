"""Where resmagic's per-cell time goes: stage timings and cProfile, inside a real ipykernel.

    python benchmarks/profile.py [--cells N] [--top N]

Prints, for ``%%timed``, ``%%gpu_scope`` and watch mode: the per-cell time against a bare
cell and against a cell magic that does nothing (IPython's own floor for any cell magic),
the microseconds of each of our stages, and the cProfile top functions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel import Kernel

CELLS = {
    "bare": "pass",
    "%%noop (IPython floor)": "%%noop\npass",
    "%%time": "%%time\npass",
    "%%timed": "%%timed\npass",
    "%%timed -q": "%%timed -q\npass",
    "%%gpu_scope --no-panel": "%%gpu_scope --no-panel\npass",
    "%%gpu_scope -q": "%%gpu_scope -q\npass",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=2000, help="cells per profile")
    parser.add_argument("--top", type=int, default=25, help="functions shown per profile")
    parser.add_argument("--no-cprofile", action="store_true", help="stage timings only")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="resmagic-profile-")
    with Kernel(workdir) as k:
        k.run("%load_ext resmagic")
        k.run("from inkernel import NOOP_MAGIC; exec(NOOP_MAGIC)")
        times = k.call(f"inkernel.per_cell({CELLS!r}, reps=7, max_cells=500, budget_s=1)")
        bare = statistics.median(times["seconds"]["bare"])
        floor = statistics.median(times["seconds"]["%%noop (IPython floor)"])
        print("| cell | per cell (µs) | over bare | over %%noop |\n|---|---|---|---|")
        for name, rounds in times["seconds"].items():
            m = statistics.median(rounds)
            print(
                f"| {name} | {m * 1e6:.1f} | {(m - bare) * 1e6:+.1f} | {(m - floor) * 1e6:+.1f} |"
            )
        print()
        for cell, stages in k.call("inkernel.stage_times(2000)").items():
            print(f"{cell}:")
            for stage, us in stages.items():
                print(f"  {us:8.1f} µs  {stage}")
        print()
        k.run("%resmagic watch on")
        watch = k.call("inkernel.per_cell({'watch on': 'pass'}, reps=7, max_cells=500, budget_s=1)")
        m = statistics.median(watch["seconds"]["watch on"])
        print(
            f"watch on (gpu_scope, timed): {m * 1e6:.1f} µs per cell, {(m - bare) * 1e6:+.1f} over bare"
        )
        k.run("%resmagic watch off")
        k.run("pass")
        if args.no_cprofile:
            return 0
        for name in ("%%timed", "%%gpu_scope --no-panel"):
            print(f"\n=== cProfile {name}, {args.cells} cells ===")
            print(k.call(f"inkernel.profile_cells({CELLS[name]!r}, {args.cells}, {args.top})"))
        k.run("%resmagic watch on")
        print(f"\n=== cProfile watch on, {args.cells} cells ===")
        print(k.call(f"inkernel.profile_cells('pass', {args.cells}, {args.top})"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
