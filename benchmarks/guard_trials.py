"""Where the memory guard stops a fast loop of plain Python, and how often the OOM killer wins.

    python benchmarks/guard_trials.py [--processes N] [--python-steps K]
                                      [--sample-interval S] [--against REF]

Needs root and a writable cgroup v1 memory hierarchy: tests/cgroups.py makes a 300 MiB child
of this process's own cgroup. Each process runs three guarded blocks
(``gpu_scope("host", guard="50%")``, tests/test_guard.py's training loop): 5 MiB and ``K``
steps of plain Python (``"…" % (…)``, ``sum(range(40))``) a step, no pause. It prints the MiB
each block held when it was stopped. With ``--against REF``, a process of git ref REF's
resmagic and one of this tree's alternate. A trial count, not a timed test: the figures of
docs/reliability.md's row "the memory guard stops a fast loop of plain Python" (2026-12-07,
3af2096 against 308298f: 3 of 155 processes OOM-killed against 0 of 155).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from kernel import export  # noqa: E402  (beside this file, on the path above)

from tests import cgroups  # noqa: E402
from tests.test_guard import BUSY, _training  # noqa: E402


def _code(tree: str, python_steps: int, sample_interval: float) -> str:
    source = _training(BUSY, trials=3).replace("range(1000)", f"range({python_steps})")
    source = source.replace(
        "settings.sample_interval = 0.02", f"settings.sample_interval = {sample_interval!r}"
    )
    return f"import sys\nsys.path.insert(0, {tree!r})\n{source}"


def _row(name: str, processes: int, killed: int, stops: list[int]) -> str:
    if not stops:
        return f"| {name} | {killed} of {processes} | 0 | | | |"
    stops.sort()
    p90 = stops[int(len(stops) * 0.9)]
    median = statistics.median(stops)
    return f"| {name} | {killed} of {processes} | {len(stops)} | {median:g} | {p90} | {stops[-1]} |"


def main() -> None:
    """Print one markdown row per tree: processes killed, blocks stopped, MiB at the stop."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=20)
    parser.add_argument("--python-steps", type=int, default=200)
    parser.add_argument("--sample-interval", type=float, default=0.1)
    parser.add_argument("--against", metavar="REF")
    args = parser.parse_args()
    trees = {"this tree": str(ROOT)}
    if args.against:
        trees = {args.against: export(args.against), **trees}
    killed = dict.fromkeys(trees, 0)
    stops: dict[str, list[int]] = {name: [] for name in trees}
    with cgroups.child_cgroup() as group:
        for n in range(args.processes):
            names = list(trees) if n % 2 == 0 else list(reversed(trees))
            for name in names:
                code = _code(trees[name], args.python_steps, args.sample_interval)
                done = cgroups.run_inside(group, code)
                if done.returncode == -9:
                    killed[name] += 1
                elif done.returncode != 0:
                    sys.exit(f"{name}: the child failed:\n{done.stderr[-2000:]}")
                else:
                    stops[name] += [stop["MiB"] for stop in json.loads(done.stdout)]
    print(
        f"{args.processes} processes per tree, {args.python_steps} steps of Python per 5 MiB,"
        f" sample_interval {args.sample_interval} s, a 300 MiB limit, the guard at 50%\n"
    )
    print("| tree | processes OOM-killed | blocks stopped | median MiB | 90th pct. | highest |")
    print("|---|---|---|---|---|---|")
    for name in trees:
        print(_row(name, args.processes, killed[name], stops[name]))


if __name__ == "__main__":
    main()
