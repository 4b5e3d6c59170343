"""Per-cell cost of the MLflow sink: sink off and sink on, side by side in one IPython shell.

Not part of `make bench` (the bench venv has no mlflow): run it with the test venv,
``.venv/bin/python benchmarks/sink_cost.py``. It starts a real ``mlflow server`` (SQLite, in a
temporary folder), then times ``run_cell`` of one resmagic cell in rounds that alternate the
sink off and on, so a slow phase of the machine hits both. "on, back to back" runs the cells
with no pause, the sink thread sending the earlier cells' reports meanwhile (the worst case
for contention); "on, paced" leaves the thread 30 ms between cells to send, untimed, as a
person running cells would. Prints a table of medians per cell and the ratios to off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.sinks.server import start_server  # noqa: E402  (after the path it lives on)


def _times(shell: Any, cell: str, n: int, pause_s: float) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        result = shell.run_cell(cell, store_history=True)
        out.append(time.perf_counter() - t0)
        if not result.success:
            msg = f"benchmark cell failed: {result.error_in_exec!r}"
            raise RuntimeError(msg)
        if pause_s:
            time.sleep(pause_s)
    return out


def _round(shell: Any, cell: str, n: int, results: dict[str, list[float]]) -> None:
    import resmagic

    resmagic.settings.update(sink="off")
    results["off"] += _times(shell, cell, n, 0.0)
    results["off, paced"] += _times(shell, cell, n, 0.03)
    resmagic.settings.update(sink="mlflow")
    resmagic.sinks.flush(120)  # the run exists and mlflow is imported before timing
    results["on, back to back"] += _times(shell, cell, n, 0.0)
    resmagic.sinks.flush(120)
    results["on, paced"] += _times(shell, cell, n, 0.03)
    resmagic.sinks.flush(120)


def _us(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e6:.0f} µs ({statistics.fmean(values) * 1e6:.0f} µs)"


def main() -> None:
    """Start the server, run the rounds, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=100, help="cells per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cell", default="%%timed -q\npass")
    args = parser.parse_args()
    server = start_server(Path(tempfile.mkdtemp(prefix="resmagic-sink-cost-")))
    os.environ["MLFLOW_TRACKING_URI"] = server.uri
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    try:
        from IPython.core.interactiveshell import InteractiveShell

        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "resmagic")
        import resmagic

        results: dict[str, list[float]] = {
            k: [] for k in ("off", "off, paced", "on, back to back", "on, paced")
        }
        # Warm up with the sink on once, so mlflow (~100k objects, which every later full
        # garbage collection walks) is in memory for the off cells too.
        resmagic.settings.update(sink="mlflow")
        _times(shell, args.cell, 50, 0.0)
        resmagic.sinks.flush(120)
        for _ in range(args.rounds):
            _round(shell, args.cell, args.cells, results)
        states = resmagic.sinks.states()
        resmagic.settings.update(sink="off")
    finally:
        server.stop()
    print(f"cell {args.cell!r}, {args.rounds} rounds x {args.cells} cells per variant")
    print("| cells | sink off, median (mean) | sink on, median (mean) | on / off (medians) |")
    print("|---|---|---|---|")
    for label, off_key, on_key in (
        ("back to back", "off", "on, back to back"),
        ("paced, 30 ms apart", "off, paced", "on, paced"),
    ):
        off, on = results[off_key], results[on_key]
        print(
            f"| {label} | {_us(off)} | {_us(on)} | "
            f"{statistics.median(on) / statistics.median(off):.2f}× |"
        )
    print("last round's sink:", "; ".join(state.summary() for state in states))


if __name__ == "__main__":
    main()
