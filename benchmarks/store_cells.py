"""What the run store costs per measured cell: store on and off, this tree and another, alternating.

    python benchmarks/store_cells.py [--against REF] [--procs N] [--rounds N]

Each process is a real in-process ``InteractiveShell`` (a fresh IPYTHONDIR: the run store is
on in a new profile, as in a kernel), ``%load_ext resmagic``, then, for ``--store off``,
``settings.store = ""`` before the first measured cell (``c.ResMagic.store = ""``'s effect).
The cells run with ``run_cell(..., store_history=False)``, their output swallowed, variants
interleaved in short rounds. Per variant: wall µs per cell over a bare cell (median of the
paired rounds), and CPU µs per cell of the main thread and of the other threads (the store's
writer, the sampler), from ``thread_time`` and ``process_time``. Processes alternate: (tree,
store) in turn, ``--procs`` times each; the figures are medians over all their rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shell_ab import VARIANTS, measure  # the same cells, timed the same way


def _child(store: str, rounds: int, round_s: float) -> None:
    print(json.dumps(measure(rounds, store == "off", round_s)))


def _export(ref: str) -> str:
    from kernel import export

    return export(ref)


def main() -> None:
    """Run the processes in turn and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", metavar="REF")
    parser.add_argument("--procs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--round-s", type=float, default=0.02)
    parser.add_argument("--child", choices=["on", "off"])
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.rounds, args.round_s)
        return
    trees: dict[str, str | None] = {"this tree": None}
    if args.against:
        trees = {args.against: _export(args.against), "this tree": None}
    results: dict[tuple[str, str], dict[str, list[list[float]]]] = {}
    for _ in range(args.procs):
        for store in ("on", "off"):
            for name, folder in trees.items():
                env = dict(os.environ)
                if folder:
                    env["PYTHONPATH"] = folder
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        store,
                        "--rounds",
                        str(args.rounds),
                        "--round-s",
                        str(args.round_s),
                    ],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd="/tmp",
                    check=True,
                ).stdout
                got = json.loads(out.strip().splitlines()[-1])
                into = results.setdefault((name, store), {})
                for label, values in got.items():
                    into.setdefault(label, []).extend(values)
    print(
        f"load average {os.getloadavg()}; {args.procs} processes per (tree, store), "
        f"{args.rounds} rounds each\n"
    )
    print(
        "| cell | store | "
        + " | ".join(
            f"{n}: µs over bare (main thread's CPU, other threads' CPU: means)" for n in trees
        )
        + " |"
    )
    print("|---|---|" + "---|" * len(trees))
    for label, _, _ in VARIANTS:
        for store in ("on", "off"):
            cols = []
            for name in trees:
                rows = results[(name, store)]
                bare, mine = rows["bare cell"], rows[label]
                over = statistics.median(a[0] - b[0] for a, b in zip(mine, bare, strict=True))
                # CPU: means (the writer's batches land in some rounds only)
                main_cpu = statistics.fmean(a[1] - b[1] for a, b in zip(mine, bare, strict=True))
                other = statistics.fmean(a[2] - b[2] for a, b in zip(mine, bare, strict=True))
                if label == "bare cell":
                    over = statistics.median(a[0] for a in bare)
                    cols.append(f"{over * 1e6:.1f} µs per cell")
                else:
                    cols.append(f"{over * 1e6:+.1f} ({main_cpu * 1e6:+.1f}, {other * 1e6:+.1f})")
            print(f"| `{label}` | {store} | " + " | ".join(cols) + " |")


if __name__ == "__main__":
    main()
