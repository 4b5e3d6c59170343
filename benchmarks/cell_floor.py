"""The floor of resmagic's cell design, without resmagic: what its hooks alone cost IPython.

    python benchmarks/cell_floor.py

In a fresh in-process ``InteractiveShell`` (resmagic not loaded): a cleanup transformer that
comments a ``%%m`` line and registers ``pre_run_cell``/``post_run_cell`` for that cell, an
AST hook added by ``pre_run_cell`` that takes itself out as it runs (as
:class:`resmagic.ipython.cells.runner.CellRunner` does). Printed: a ``%%m`` cell over a bare
cell with the hooks only, and with a ``perf_counter``/``process_time`` pair and a printed
line (what ``%%timed`` has to do at least). Rounds interleaved, median of paired rounds.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any


class _Hooks:
    def __init__(self, shell: Any, timing: bool) -> None:
        self.shell, self.timing = shell, timing
        self.t0 = (0.0, 0.0)

    def transform(self, lines: list[str]) -> list[str]:
        if lines and lines[0].startswith("%%m"):
            self.shell.events.register("pre_run_cell", self.pre)
            self.shell.events.register("post_run_cell", self.post)
            return ["# " + lines[0], *lines[1:]]
        return lines

    def pre(self, info: Any) -> None:
        self.shell.ast_transformers.append(self)

    def visit(self, node: Any) -> Any:
        self.shell.ast_transformers.pop()
        if self.timing:
            self.t0 = (time.perf_counter(), time.process_time())
        return node

    def post(self, result: Any) -> None:
        if self.timing:
            wall = time.perf_counter() - self.t0[0]
            cpu = time.process_time() - self.t0[1]
            print(f"timed  wall {wall * 1e3:.3g} ms  cpu {cpu * 1e3:.3g} ms")
        self.shell.events.unregister("pre_run_cell", self.pre)
        self.shell.events.unregister("post_run_cell", self.post)


def main(rounds: int = 40, cells: int = 40) -> None:
    """Print both floors, µs over a bare cell."""
    os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="resmagic-floor-ipython-")
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell: Any = InteractiveShell.instance()
    for timing in (False, True):
        hooks = _Hooks(shell, timing)
        shell.input_transformers_cleanup.append(hooks.transform)
        got: dict[str, list[float]] = {"pass": [], "%%m\npass": []}
        with capture_output():
            for _ in range(rounds):
                for src, seconds in got.items():
                    t0 = time.perf_counter()
                    for _ in range(cells):
                        shell.run_cell(src, store_history=False)
                    seconds.append((time.perf_counter() - t0) / cells)
        shell.input_transformers_cleanup.remove(hooks.transform)
        over = statistics.median(a - b for a, b in zip(got["%%m\npass"], got["pass"], strict=True))
        what = "hooks + a timing and a printed line" if timing else "hooks only"
        print(f"{what}: {over * 1e6:+.1f} µs over a bare cell")


if __name__ == "__main__":
    main()
