"""Per-cell cost of the run store, on against off, side by side in one IPython process.

    python benchmarks/store.py [--cells 1000] [--rounds 7] [--full ROWS]

Runs ``%%timed`` and ``%%gpu_scope --no-panel`` cells, quiet and shown, in one in-process shell, in
alternating rounds with the store on (a fresh file in a temporary profile) and off, and
prints the median microseconds per cell of each, their difference and ratio: wall time,
the main thread's CPU time (the cell's own path), and the process's CPU time (the writer
thread's commits included: what the store costs a loaded machine). ``--full ROWS``: the store
starts with ROWS finished rows and ``store_limit`` is ROWS, so every report is trimmed
against a store at its limit (a long-time user's: the default limit is 100,000).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

CELLS = {
    "%%timed -q": "%%timed -q\npass",
    "%%timed": "%%timed\npass",  # a shown report: "last time" is looked up for it
    "%%gpu_scope -q": "%%gpu_scope -q --no-panel\npass",
    "%%gpu_scope": "%%gpu_scope --no-panel\npass",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--full", type=int, metavar="ROWS", help="a store at its limit of ROWS")
    args = parser.parse_args()
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="resmagic-bench-store-")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from resmagic.config import settings
    from resmagic.store.recorder import recorder

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "resmagic")
    path = settings.store
    settings.update(store_limit=args.full or 10**9)
    if args.full:
        _fill(path, args.full)
    print(f"{args.cells} cells a round, {args.rounds} rounds, store {path}")
    for name, cell in CELLS.items():
        got: dict[str, dict[str, list[float]]] = {
            state: {"wall": [], "main cpu": [], "all cpu": []} for state in ("on", "off")
        }
        for _ in range(args.rounds):
            for state in ("on", "off"):
                settings.store = path if state == "on" else ""
                recorder.writer()
                clocks = (time.perf_counter(), time.thread_time(), time.process_time())
                with capture_output():  # the shown cells' lines, out of the terminal
                    for _ in range(args.cells):
                        ip.run_cell(cell, store_history=True)
                if state == "on":
                    recorder.flush()  # the writer's CPU for these cells counts in "all cpu"
                ends = (time.perf_counter(), time.thread_time(), time.process_time())
                for key, t0, t1 in zip(got[state], clocks, ends, strict=True):
                    got[state][key].append((t1 - t0) / args.cells * 1e6)
        for key in ("wall", "main cpu", "all cpu"):
            on = statistics.median(got["on"][key])
            off = statistics.median(got["off"][key])
            print(
                f"{name:16} {key:8} off {off:7.1f} µs  on {on:7.1f} µs"
                f"  {on - off:+6.1f} µs  ×{on / off:.3f}"
            )
    ip.run_line_magic("unload_ext", "resmagic")


def _fill(path: str, rows: int) -> None:
    """``rows`` finished reports of an earlier session, written straight into the file."""
    from resmagic.store.schema import connect

    conn = connect(path)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO reports (run, session, notebook, cell_id, code_sha, scope, status,"
        " started_at, duration_s) VALUES (?, 'earlier', 'nb.ipynb', ?, ?, 'timed', 'ok', ?, 0.1)",
        [(f"r{i}", f"c{i % 50}", f"sha{i % 300}", float(i)) for i in range(rows)],
    )
    conn.execute("COMMIT")
    conn.close()


if __name__ == "__main__":
    main()
