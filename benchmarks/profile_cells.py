"""Where resmagic's per-cell time goes, and before/after a change, inside real ipykernels.

    python benchmarks/profile_cells.py [--against REF] [--patch FILE ...] [--no-cprofile]

Prints, for ``%%timed``, ``%%gpu_scope`` and watch mode: the per-cell time against a bare
cell and against a cell magic that does nothing (IPython's own floor for any cell magic),
the microseconds of each of our stages (``timeit``, best of 5: steady under a busy
machine), and the cProfile top functions. With ``--against REF`` the same numbers come for
the resmagic of git ref REF too (its ``resmagic/`` exported to a temporary folder put first
on the kernel's PYTHONPATH), in alternating kernels, side by side; with ``--patch`` also
for this tree with those patches applied (e.g. the proposed-*.patch files beside this one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel import Kernel, export, patched

BARE = "pass"
CELLS: list[tuple[str, str | None, str]] = [
    ("bare", "%resmagic watch off", BARE),
    ("%%noop (IPython floor)", None, "%%noop\npass"),
    ("%%time", None, "%%time\npass"),
    ("%%timed", None, "%%timed\npass"),
    ("%%timed -q", None, "%%timed -q\npass"),
    ("%%gpu_scope --no-panel", None, "%%gpu_scope --no-panel\npass"),
    ("%%gpu_scope -q", None, "%%gpu_scope -q\npass"),
    ("%%gpu_scope (panel)", None, "%%gpu_scope\npass"),
    ("watch on (gpu_scope, timed)", "%resmagic watch on", BARE),
    ("watch on --scopes timed", "%resmagic watch on --scopes timed", BARE),
]


def measure(tree: str | None, reps: int, cprofile: tuple[int, int] | None) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="resmagic-profile-")
    env = {"PYTHONPATH": tree} if tree else None
    with Kernel(workdir, env=env) as k:
        k.run("%load_ext resmagic")
        k.run("from inkernel import NOOP_MAGIC; exec(NOOP_MAGIC)")
        out: dict[str, Any] = {"file": k.call("json.dumps(sys.modules['resmagic'].__file__)")}
        out["cells"] = k.call(
            f"inkernel.per_cell({CELLS!r}, reps={reps}, max_cells=100, budget_s=1)"
        )
        k.run("%resmagic watch off")
        k.run("pass")
        out["stages"] = k.call("inkernel.stage_times(2000)")
        if cprofile:
            cells, top = cprofile
            out["profiles"] = {}
            for name in ("%%timed", "%%gpu_scope --no-panel", "%%gpu_scope (panel)"):
                src = next(cell for label, _, cell in CELLS if label == name)
                out["profiles"][name] = k.call(f"inkernel.profile_cells({src!r}, {cells}, {top})")
            k.run("%resmagic watch on")
            out["profiles"]["watch on"] = k.call(f"inkernel.profile_cells('pass', {cells}, {top})")
    return out


def _overheads(runs: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Per variant: (median µs per cell, median µs over the same round's bare cell), pooled."""
    pooled: dict[str, list[float]] = {}
    diffs: dict[str, list[float]] = {}
    for run in runs:
        seconds = run["cells"]["seconds"]
        for label, rounds in seconds.items():
            pooled.setdefault(label, []).extend(rounds)
            diffs.setdefault(label, []).extend(
                a - b for a, b in zip(rounds, seconds["bare"], strict=True)
            )
    return {
        label: (statistics.median(pooled[label]) * 1e6, statistics.median(diffs[label]) * 1e6)
        for label in pooled
    }


def _stages(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    best: dict[str, dict[str, float]] = {}
    for run in runs:
        for cell, stages in run["stages"].items():
            for stage, us in stages.items():
                slot = best.setdefault(cell, {})
                slot[stage] = min(us, slot.get(stage, us))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--against", metavar="REF", help="also measure the resmagic of this ref")
    parser.add_argument(
        "--patch", action="append", default=[], help="also measure this tree with this patch"
    )
    parser.add_argument("--kernels", type=int, default=2, help="kernels per version (alternating)")
    parser.add_argument("--reps", type=int, default=20, help="rounds per kernel")
    parser.add_argument("--cells", type=int, default=3000, help="cells per cProfile")
    parser.add_argument("--top", type=int, default=30, help="functions shown per cProfile")
    parser.add_argument("--no-cprofile", action="store_true", help="no cProfile listing")
    args = parser.parse_args()
    versions: dict[str, str | None] = {"this tree": None}
    if args.against:
        versions = {args.against: export(args.against), "this tree": None}
    if args.patch:
        versions["this tree + patches"] = patched(args.patch)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in versions}
    for i in range(args.kernels):
        for name, tree in versions.items():
            wants_profile = not args.no_cprofile and name == "this tree" and i == 0
            print(f"[kernel {i + 1}/{args.kernels}] {name}", file=sys.stderr, flush=True)
            result = measure(tree, args.reps, (args.cells, args.top) if wants_profile else None)
            print(f"  resmagic from {result['file']}", file=sys.stderr, flush=True)
            runs[name].append(result)

    names = list(versions)
    cells = {name: _overheads(runs[name]) for name in names}
    head = " | ".join(f"{n}: per cell, over bare (µs)" for n in names)
    print(f"| cell | {head} |\n|---|" + "---|" * len(names))
    for label, _, _ in CELLS:
        row = " | ".join(f"{cells[n][label][0]:.1f}, {cells[n][label][1]:+.1f}" for n in names)
        print(f"| `{label}` | {row} |")
    print()
    stages = {name: _stages(runs[name]) for name in names}
    print(f"| stage (µs per call, best of 5) | {' | '.join(names)} |\n|---|" + "---|" * len(names))
    for cell, per in stages[names[-1]].items():
        for stage in per:
            values = " | ".join(
                f"{stages[n].get(cell, {}).get(stage, float('nan')):.1f}" for n in names
            )
            print(f"| {cell}: {stage} | {values} |")
    for run in runs["this tree"]:
        for name, text in run.get("profiles", {}).items():
            print(f"\n=== cProfile: {name}, {args.cells} cells ===\n{text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
