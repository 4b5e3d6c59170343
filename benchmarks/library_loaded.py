"""The library form where users call it: in a notebook's shell, resmagic loaded, store on.

    python benchmarks/library_loaded.py [--before REF] [--interpreters N] [--rounds N]

``benchmarks/library.py`` times ``with timed("x"): pass`` in a bare interpreter. In a
notebook ``%load_ext resmagic`` has run: every report also goes to the run store (a row per
report, written by the store's thread), and each names its cell. This times the same blocks
in an in-process ``InteractiveShell`` (a fresh IPYTHONDIR, so a fresh store) first without
and then with ``%load_ext resmagic``, in rounds of ``--blocks`` blocks, each round ending
with the store's writes committed (``recorder.flush()``), so the store's work is counted and
nothing is dropped (its queue holds 10,000 jobs). Every report is stored (``store_per_cell``
raised), then the same loops run past the cell's ``store_per_cell`` (1,000), where a block's
report is counted and not stored (a tree before that setting: its every report stored).
Per variant: wall µs per block with the
flush, the main thread's CPU µs per block, and the other threads' (the writer's) CPU µs per
block; medians over rounds. ``--before REF``: the resmagic of git ref REF too, in
interpreters alternating with this tree's.
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

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(HERE))

from library import VARIANTS as ALL  # noqa: E402  # beside this file (see above)
from library import trees  # noqa: E402

SHOWN = (
    'timed("x")',
    'timed("x", keep="totals")',
    '@timed("f") f()',
    "gpu_scope() (CPU: host row)",
)
VARIANTS = [variant for variant in ALL if variant[0] in SHOWN]
"""library.py's (name, setup, one block) of the resmagic forms: setup runs once."""
PAST = "loaded, past store_per_cell"
"""The blocks of a loop past its cell's ``store_per_cell`` reports: counted, not stored."""


def child(rounds: int, blocks: int) -> dict[str, Any]:
    """In this interpreter: each variant's rounds without, then with, ``%load_ext resmagic``."""
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="resmagic-loaded-ipython-")
    from IPython.core.interactiveshell import InteractiveShell

    import resmagic

    shell: Any = InteractiveShell.instance()
    loops: dict[str, Any] = {}
    for name, setup, stmt in VARIANTS:
        body = "\n".join(f"    {line}" for line in (f"for _ in range({blocks}):", f"    {stmt}"))
        ns: dict[str, Any] = {}
        exec(f"{setup}\ndef loop():\n{body}", ns)
        loops[name] = ns["loop"]

    def rounds_of(flush: Any) -> dict[str, dict[str, list[float]]]:
        got: dict[str, dict[str, list[float]]] = {}
        for name, loop in loops.items():
            loop()  # warm-up
            flush()
            slot = got.setdefault(name, {"wall": [], "main": [], "others": []})
            for _ in range(rounds):
                t0, main0, all0 = time.perf_counter(), time.thread_time(), time.process_time()
                loop()
                flush()
                wall = time.perf_counter() - t0
                main, total = time.thread_time() - main0, time.process_time() - all0
                slot["wall"].append(wall * 1e6 / blocks)
                slot["main"].append(main * 1e6 / blocks)
                slot["others"].append((total - main) * 1e6 / blocks)
        return got

    out: dict[str, Any] = {"resmagic_from": resmagic.__file__}
    out["not loaded"] = rounds_of(lambda: None)
    shell.run_line_magic("load_ext", "resmagic")
    from resmagic.config import settings
    from resmagic.store.recorder import recorder

    # Every block's report stored: a cell's first store_per_cell reports of a label (a tree
    # before that setting stores every one).
    cap = getattr(settings, "store_per_cell", None)
    if cap is not None:
        settings.update(store_per_cell=10**9)
    out["loaded"] = rounds_of(recorder.flush)
    if cap is not None:  # the same loops, now past the cell's cap: reports not stored
        settings.update(store_per_cell=cap)
        out[PAST] = rounds_of(recorder.flush)
    writer = recorder._writer  # a benchmark may look: nothing dropped
    out["lost"] = writer.lost if writer is not None else 0
    return out


def measure(
    tree_list: list[tuple[str, dict[str, str] | None]],
    interpreters: int = 3,
    rounds: int = 15,
    blocks: int = 2000,
) -> dict[str, Any]:
    """Every tree's rounds, pooled over its interpreters (trees alternating)."""
    pooled: dict[str, dict[str, Any]] = {}
    for i in range(interpreters):
        for label, env in tree_list:
            print(
                f"[notebook library] {label}, interpreter {i + 1}/{interpreters}", file=sys.stderr
            )
            run = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--rounds",
                    str(rounds),
                    "--blocks",
                    str(blocks),
                ],
                env=dict(os.environ, **(env or {})),
                capture_output=True,
                text=True,
                check=True,
                cwd=str(HERE),
            )
            got = json.loads(run.stdout)
            tree = pooled.setdefault(label, {"resmagic_from": got["resmagic_from"], "lost": 0})
            tree["lost"] += got["lost"]
            for state in ("not loaded", "loaded", PAST):
                for name, series in got.get(state, {}).items():
                    slot = tree.setdefault(state, {}).setdefault(name, {})
                    for key, values in series.items():
                        slot.setdefault(key, []).extend(values)
    plan = {"interpreters": interpreters, "rounds": rounds, "blocks": blocks}
    return {"trees": pooled, "plan": plan}


def table(results: dict[str, Any]) -> str:
    """Per block and tree: µs without resmagic loaded, loaded (main thread CPU, writer CPU)."""
    pooled = results["trees"]
    labels = list(pooled)
    lines = [
        "| block | "
        + " | ".join(f"{t}: not loaded / **loaded** (its main thread, the writer)" for t in labels)
        + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name, _, _ in VARIANTS:
        for state in ("loaded", PAST):
            if state == PAST and (name.endswith('keep="totals")') or not _has(pooled, PAST)):
                continue  # it stores no report
            cells = []
            for label in labels:
                bare = statistics.median(pooled[label]["not loaded"][name]["wall"])
                loaded = pooled[label].get(state, pooled[label]["loaded"])[name]
                main = statistics.median(loaded["main"])
                others = statistics.median(loaded["others"])
                wall = statistics.median(loaded["wall"])
                cells.append(f"{bare:.2f} / **{wall:.2f}** ({main:.2f}, {others:.2f})")
            shown = f"`{name}`" + (", past the cell's `store_per_cell`" if state == PAST else "")
            lines.append(f"| {shown} | " + " | ".join(cells) + " |")
    lost = {label: tree["lost"] for label, tree in pooled.items() if tree["lost"]}
    if lost:
        lines += ["", f"Reports the store dropped (its queue was full): {lost}."]
    return "\n".join(lines)


def _has(pooled: dict[str, Any], state: str) -> bool:
    return any(state in tree for tree in pooled.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="REF", help="also measure the resmagic of REF")
    parser.add_argument("--interpreters", type=int, default=3, help="per tree, alternating")
    parser.add_argument("--rounds", type=int, default=15, help="rounds per variant")
    parser.add_argument("--blocks", type=int, default=2000, help="blocks per round")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.rounds, args.blocks)))
        return 0
    results = measure(trees(args.before), args.interpreters, args.rounds, args.blocks)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
