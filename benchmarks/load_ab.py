"""``%load_ext resmagic`` in fresh kernels, this tree against a git ref, kernels alternating.

    python benchmarks/load_ab.py [--against REF] [--kernels N]

Both trees are byte-compiled first, as installed. Each kernel gets a fresh IPYTHONDIR (no dead kernel's state file to read) and the tree's
``resmagic/`` first on its PYTHONPATH (the ref's exported, this tree's as it is), so the two
trees alternate and a loaded machine slows both alike. In the kernel, the line is timed with
``perf_counter`` around ``run_cell`` and the new modules counted (benchmarks/inkernel.py's
``load_time``). Printed per tree: median and 10th percentile in ms, each kernel, the modules.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel import ROOT, export

INKERNEL = Path(__file__).resolve().parent / "inkernel.py"


def one(pythonpath: str) -> dict[str, Any]:
    """One fresh kernel: ``%load_ext resmagic`` timed inside it."""
    from jupyter_client.manager import start_new_kernel

    env = dict(os.environ, PYTHONPATH=pythonpath, IPYTHONDIR=tempfile.mkdtemp())
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        code = (
            f"exec(compile(open({str(INKERNEL)!r}).read(), 'inkernel', 'exec'))\n"
            "print(load_time('%load_ext resmagic'))"
        )
        got = kc.execute_interactive(code, timeout=60, output_hook=_keep)
        assert got["content"]["status"] == "ok", got
        return dict(json.loads(_keep.lines[-1]))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


class _Keeper:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            self.lines.extend(msg["content"]["text"].splitlines())


_keep = _Keeper()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--against", default="HEAD", help="git ref timed in alternating kernels")
    parser.add_argument("--kernels", type=int, default=10, help="kernels per tree")
    args = parser.parse_args()
    trees = {args.against: export(args.against), "this tree": str(ROOT)}
    for path in trees.values():  # as installed: no module compiled at import
        compileall.compile_dir(Path(path) / "resmagic", quiet=1)
    got: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(args.kernels):
        for name, path in trees.items():
            got[name].append(one(path))
    for name, runs in got.items():
        ms = sorted(r["seconds"] * 1e3 for r in runs)
        p10 = ms[max(len(ms) // 10 - 1, 0)] if len(ms) >= 10 else ms[0]
        each = ", ".join(f"{r['seconds'] * 1e3:.1f}" for r in runs)
        modules = statistics.median(r["new_modules"] for r in runs)
        print(
            f"{name}: median {statistics.median(ms):.1f} ms, p10 {p10:.1f} ms,"
            f" {modules:.0f} new modules; each: {each}"
        )


if __name__ == "__main__":
    main()
