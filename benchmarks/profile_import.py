"""What ``%load_ext resmagic`` costs: modules imported (self time each), the steps of ``load()``,
and which of those modules a first cell uses (the rest could load when first needed).

    python benchmarks/profile_import.py [--runs N]

Each measurement in fresh interpreters of this Python, each with a fresh IPYTHONDIR (so the
run store starts in a new profile, as in a new kernel): ``-X importtime`` over the
``%load_ext`` alone (IPython already imported), ``load()``'s own steps with the modules
already imported (benchmarks/tracer.py), and a profile hook that notes the module of every
Python function called during a first ``%%timed`` cell, a first ``%%gpu_scope`` cell and a
first watched cell (every thread: the run store's writer too).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

_SHELL = """
import os, sys, tempfile, time
os.environ["IPYTHONDIR"] = tempfile.mkdtemp(prefix="resmagic-import-")
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
before = set(sys.modules)
"""

_IMPORTTIME = (
    _SHELL
    + """
print("-- load_ext --", file=sys.stderr, flush=True)
t0 = time.perf_counter()
shell.run_line_magic("load_ext", "{ext}")
t1 = time.perf_counter()
print("-- done --", file=sys.stderr, flush=True)
import json
print(json.dumps({{"seconds": t1 - t0, "new": sorted(set(sys.modules) - before)}}))
"""
)

_USES = (
    _SHELL
    + """
import json, threading
shell.run_line_magic("load_ext", "resmagic")
loaded = sorted(set(sys.modules) - before)
used = {}
def note(frame, event, arg):
    if event == "call":
        name = frame.f_globals.get("__name__")
        if name:
            used.setdefault(name, set()).add(CURRENT[0])
CURRENT = [""]
from IPython.utils.capture import capture_output
steps = [
    ("first %%timed cell", "%%timed\\npass"),
    ("first %%gpu_scope --no-panel cell", "%%gpu_scope --no-panel\\npass"),
    ("first watched cell", "%resmagic watch on"),
    ("first watched cell", "pass"),
    ("first watched cell", "%resmagic watch off"),
    ('first `with timed("x")` (no magic)', "from resmagic import timed\\nwith timed('x'): pass"),
]
sys.setprofile(note)
threading.setprofile(note)
with capture_output(display=True):
    for label, src in steps:
        CURRENT[0] = label
        shell.run_cell(src, store_history=False)
    time.sleep(0.5)  # the store's writer thread commits the first reports
sys.setprofile(None)
threading.setprofile(None)
print(json.dumps({"loaded": loaded, "used": {k: sorted(v) for k, v in used.items()}}))
"""
)


def _run(code: str, env: dict[str, str] | None = None, *flags: str) -> tuple[str, str]:
    out = subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, **(env or {})),
        cwd=tempfile.gettempdir(),
    )
    return out.stdout, out.stderr


def importtime(ext: str, runs: int) -> dict[str, Any]:
    """Median ``%load_ext`` wall time, modules it imported, and their self time (µs)."""
    seconds: list[float] = []
    selfs: dict[str, list[int]] = {}
    counts: list[int] = []
    for _ in range(runs):
        stdout, stderr = _run(_IMPORTTIME.format(ext=ext), None, "-X", "importtime")
        result = json.loads(stdout.strip().splitlines()[-1])
        seconds.append(result["seconds"])
        counts.append(len(result["new"]))
        inside = stderr.split("-- load_ext --", 1)[1].split("-- done --", 1)[0]
        for line in inside.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            own, _, name = line.removeprefix("import time:").split("|")
            selfs.setdefault(name.strip(), []).append(int(own))
    return {
        "seconds": statistics.median(seconds),
        "each": seconds,
        "modules": int(statistics.median(counts)),
        "self_us": {name: statistics.median(v) for name, v in selfs.items()},
    }


def uses() -> dict[str, Any]:
    """Modules loaded at ``%load_ext`` and which first cells called into each."""
    stdout, _ = _run(_USES)
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def _group(name: str) -> str:
    if name.startswith("resmagic."):
        return name
    return name.split(".")[0] + " (and submodules)"


def main(runs: int = 5) -> None:
    """Print the import table, the first-cell uses and the load steps."""
    got = importtime("resmagic", runs)
    print(
        f"`%load_ext resmagic`: median {got['seconds'] * 1e3:.1f} ms over {runs} fresh interpreters"
        f" ({', '.join(f'{s * 1e3:.1f}' for s in got['each'])}), {got['modules']} new modules;"
        f" their import self time adds up to {sum(got['self_us'].values()) / 1e3:.1f} ms\n"
    )
    try:
        auto = importtime("autotime", runs)
        print(
            f"`%load_ext autotime` for comparison: median {auto['seconds'] * 1e3:.1f} ms,"
            f" {auto['modules']} new modules\n"
        )
    except subprocess.CalledProcessError:
        print("(ipython-autotime not installed here: no comparison)\n")
    found = uses()
    used = found["used"]
    groups: dict[str, float] = {}
    for name, us in got["self_us"].items():
        groups[_group(name)] = groups.get(_group(name), 0) + us
    print("| module (import self time, median) | µs | used by a first cell? |\n|---|---|---|")
    for name, us in sorted(groups.items(), key=lambda kv: -kv[1]):
        if name.endswith("(and submodules)"):
            root = name.split(" ")[0]
            who = sorted({c for m, cs in used.items() if m.split(".")[0] == root for c in cs})
        else:
            who = used.get(name, [])
        print(
            f"| `{name}` | {us:.0f} | {'; '.join(who) if who else '**no** (could load lazily)'} |"
        )
    print()
    lazy = [m for m in found["loaded"] if m not in used]
    print(
        f"Of {len(found['loaded'])} modules new at `%load_ext`, {len(lazy)} run no function in"
        " the first cells above (a module used only for a constant or an isinstance check"
        " counts as unused here: check before making it lazy):\n"
    )
    print(", ".join(f"`{m}`" for m in lazy))
    print()
    steps()


_STEPS = (
    _SHELL
    + """
import sys
sys.path.insert(0, {here!r})
import resmagic.ipython.extension as ext
from tracer import Tracer, tree_rows
import resmagic.ipython.storestart as storestart, resmagic.ipython.session as session
from resmagic.ipython.magics import ResMagics
from resmagic.ipython.cells.runner import CellRunner
from resmagic.ipython.views.output import ReportOutput
from resmagic.store.recorder import Recorder
from resmagic.store import deadkernels
t = Tracer()
t.calibrate()
t.patch(ext, "load", "load()")
t.patch(ext, "Session", "Session(shell) (output, store hook, notes, layers, watcher, guard, runner)")
t.patch(ResMagics, "__init__", "ResMagics(shell, session)")
t.patch(type(shell), "register_magics", "shell.register_magics")
t.patch(session, "CellRunner", "CellRunner(...) (and its header transformer)")
t.patch(CellRunner, "register", "runner.register (header transformer in place)")
t.patch(ReportOutput, "register", "output.register (display hook / wrap system)")
t.patch(session.UsageEntry, "install", "usage_request: our entry in ipykernel's table")
t.patch(ext, "ResMagic", "ResMagic(parent=shell) (traitlets config)")
t.patch(session, "StoreHook", "StoreHook(...)")
t.patch(storestart.StoreStart, "load", "store.load")
t.patch(storestart.StoreStart, "ready", "store.ready (only with a dead kernel's state file)")
t.patch(deadkernels, "find", "deadkernels.find")
t.patch(Recorder, "writer", "recorder.writer (opens the store, starts its thread)")
t.patch(Recorder, "lookup", "recorder.lookup (warm recent runs)")
t.patch(Recorder, "wait", "recorder.wait (for the warm lookup)")
t.patch(ext, "_start_sinks", "_start_sinks")
import time as _time
t0 = _time.perf_counter()
shell.run_line_magic("load_ext", "resmagic")
whole = _time.perf_counter() - t0
rows, _ = tree_rows([dict(t.nodes)], t, 1)
import json
print(json.dumps({{"whole": whole, "rows": [[list(p), c, i, s] for p, c, i, s in rows]}}))
"""
)


def steps(runs: int = 5) -> None:
    """``load()``'s own steps, modules already imported, fresh profile each run."""
    results = []
    for _ in range(runs):
        stdout, _ = _run(_STEPS.format(here=str(HERE)))
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    best = min(results, key=lambda r: r["whole"])
    print(
        f"`load()` with every module already imported (fastest of {runs} fresh profiles):"
        f" {best['whole'] * 1e3:.2f} ms\n"
    )
    print("| step | ms (inclusive) | ms (own) |\n|---|---|---|")
    rows = [(tuple(path), incl, own) for path, _, incl, own in best["rows"]]
    seen = [r[0] for r in rows]
    # Recorded as each step ended (children first): list each step under its parent.
    rows.sort(key=lambda r: tuple(seen.index(r[0][: i + 1]) for i in range(len(r[0]))))
    for path, incl, own in rows:
        print(f"| {'· ' * (len(path) - 1)}{path[-1]} | {incl / 1e3:.3f} | {own / 1e3:.3f} |")
