"""How it is measured: drives each session's kernels, times its cells and what its tool reports.

Also builds the other resmagic trees (``--before REF``, ``--patch FILE``) and measures them
beside this one; ``run_all`` returns the raw results that tables.py and render.py report.
"""

from __future__ import annotations

import compileall
import dataclasses
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import library
import library_loaded
from kernel import Kernel, export, patched
from machine import git, machine
from parse import parse_peak, parse_time
from plan import (
    ARRAY_BYTES,
    COMPARED,
    HOLDS,
    LOADS,
    SLEEP,
    TIME_BUILTIN,
    Plan,
    Session,
    sessions,
)


def say(text: str) -> None:
    """Progress, on stderr (stdout is the tables)."""
    print(text, file=sys.stderr, flush=True)


def measure_session(
    s: Session, plan: Plan, workdir: str, env: dict[str, str] | None = None, light: bool = False
) -> dict[str, Any]:
    """Time the session's cells; unless ``light``, also what the tool reports (fidelity)."""
    out: dict[str, Any] = {"name": s.name}
    with Kernel(workdir, env=env) as k:
        k.run(s.setup)
        out["resmagic_from"] = k.call(
            "json.dumps(getattr(__import__('importlib.util').util.find_spec('resmagic'), 'origin', None))"
        )
        say(f"[{s.name}] {', '.join(label for label, _, _ in s.variants)}")
        args = f"reps={plan.reps}, max_cells={plan.max_cells}, budget_s={plan.budget_s}"
        out["cells"] = k.call(f"inkernel.per_cell({s.variants!r}, {args})")
        if light:
            return out
        # The rounds end with the tool switched on: measure what it reports.
        if s.reader == "resmagic":
            out["time_builtin"] = _time_fidelity(k, "%%time", TIME_BUILTIN, plan)
        if s.time_cell is not None:
            say(f"[{s.name}] time fidelity")
            out["time"] = _time_fidelity(k, s.name, s.time_cell, plan, s.reader)
        if s.peak_prefix is not None:
            say(f"[{s.name}] peak fidelity")
            out["peak"] = _peak_fidelity(k, s.name, s.peak_prefix, plan, s.reader)
        if s.reader == "resmagic":
            say(f"[{s.name}] sampler cost")
            out["sampler"] = [
                k.call(f"inkernel.sampler_cost({interval}, {plan.sampler_s})")
                for interval in (0.1, 0.05)
            ]
    return out


def _time_fidelity(
    k: Kernel, tool: str, prefix: str, plan: Plan, reader: str = "stdout"
) -> list[dict[str, float | None]]:
    """What the tool reports for a cell sleeping SLEEP s, beside how long the sleep really took."""
    k.run("import time")
    values: list[dict[str, float | None]] = []
    for _ in range(plan.fidelity_rounds):
        cell = f"_t0 = time.perf_counter()\ntime.sleep({SLEEP})\n_slept = time.perf_counter() - _t0"
        text, _ = k.run(prefix + cell)
        if reader == "resmagic" and tool != "%%time":
            reported = k.call("inkernel.resmagic_last('time')")["seconds"]
        else:
            reported = parse_time(tool, text)
        values.append({"reported": reported, "slept": k.call("json.dumps(_slept)")})
    return values


def _peak_fidelity(
    k: Kernel, tool: str, prefix: str, plan: Plan, reader: str
) -> dict[str, list[float | None]]:
    k.run("import time\nimport numpy as np")
    k.run("pass")  # peers report the cell after the import; start from a quiet one
    values: dict[str, list[float | None]] = {str(h): [] for h in HOLDS}
    for _ in range(plan.fidelity_rounds):
        for hold in HOLDS:
            cell = (
                f"{prefix}_a = np.ones({ARRAY_BYTES}, dtype=np.uint8)\ntime.sleep({hold})\ndel _a"
            )
            text, _ = k.run(cell)
            if reader == "resmagic":
                values[str(hold)].append(
                    k.call("inkernel.resmagic_last('peak')")["peak_above_before"]
                )
            else:
                values[str(hold)].append(parse_peak(tool, text))
    return values


def measure_loads(plan: Plan, workdir: str) -> dict[str, list[dict[str, Any]]]:
    """Each tool's ``%load_ext`` (or equivalent), a fresh kernel each, ``load_rounds`` times."""
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in LOADS}
    for _ in range(plan.load_rounds):
        for name, code in LOADS.items():
            say(f"[load] {name}")
            with Kernel(workdir) as k:
                out[name].append(k.call(f"inkernel.load_time({code!r})"))
    return out


def compile_resmagic() -> None:
    """Byte-compile resmagic, as pip does for an installed package.

    An editable install has no ``.pyc`` (and PYTHONDONTWRITEBYTECODE may keep Python from
    writing any), so every kernel would compile resmagic from source at ``%load_ext`` while
    the peers, installed by pip, load compiled code.
    """
    spec = importlib.util.find_spec("resmagic")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            compileall.compile_dir(folder, quiet=1)


def other_trees(before: str | None, patches: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(label, kernel environment) of each other resmagic to measure beside this tree."""
    trees = []
    if before:
        try:
            folder = export(before)
            compileall.compile_dir(folder, quiet=1)
            short = git("rev-parse", "--short", before)
            label = f"before ({before})" if short == before else f"before ({before}, {short})"
            trees.append((label, {"PYTHONPATH": folder}))
        except subprocess.CalledProcessError as exc:  # no git, or no such commit here
            say(f"not measuring {before}: {exc.stderr.decode().strip()}")
    if patches:
        names = ", ".join(Path(p).name for p in patches)
        try:
            folder = patched(patches)
            compileall.compile_dir(folder, quiet=1)
            trees.append(("with the proposed patches", {"PYTHONPATH": folder}))
        except subprocess.CalledProcessError as exc:  # applied upstream, or out of date
            say(f"not measuring {names}: it does not apply here: {exc.stderr.decode().strip()}")
    return trees


def _pool(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Add a second kernel's rounds to a session's (each round stays paired with its bare)."""
    for label, rounds in more["cells"]["seconds"].items():
        into["cells"]["seconds"][label].extend(rounds)
        threads = into["cells"]["threads"]
        threads[label] = max(threads[label], more["cells"]["threads"][label])


def _side_by_side(
    s: Session, plan: Plan, workdir: str, trees: list[tuple[str, dict[str, str]]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``s`` measured in this tree and (light) in each of ``trees``: (this tree's, theirs)."""
    # Versions compared side by side get two kernels each, alternating, half the rounds
    # in each: a kernel that happens to start in a slow phase of the machine weighs half.
    half = dataclasses.replace(plan, reps=max(plan.reps // 2, 1))
    mine = measure_session(s, half, workdir)
    others = []
    for label, env in trees:
        say(f"[{s.name}] again, {label}")
        others.append(measure_session(s, half, workdir, env, light=True))
    say(f"[{s.name}] second kernels")
    _pool(mine, measure_session(s, half, workdir, light=True))
    for (_, env), first in zip(trees, others, strict=True):
        _pool(first, measure_session(s, half, workdir, env, light=True))
    return mine, others


def run_all(
    plan: Plan,
    only: set[str] | None,
    before: str | None = None,
    patches: list[str] | None = None,
    library_before: str | None = None,
) -> dict[str, Any]:
    """Measure every session (or those in ``only``; "load", "library", "notebook-library")."""
    compile_resmagic()
    started = time.monotonic()
    load_start = list(os.getloadavg())  # other work on this machine shows up as noise
    workdir = tempfile.mkdtemp(prefix="resmagic-bench-")
    log = os.path.join(workdir, "runs", "bench.log")
    trees = other_trees(before, patches or [])
    results: dict[str, Any] = {
        "machine": machine(),
        "plan": vars(plan),
        "sessions": [],
        "compare": {label: [] for label, _ in trees},
    }
    for s in sessions(log):
        if only is not None and s.name not in only:
            continue
        if s.name not in COMPARED or not trees:
            results["sessions"].append(measure_session(s, plan, workdir))
            continue
        mine, others = _side_by_side(s, plan, workdir, trees)
        for (label, _), first in zip(trees, others, strict=True):
            results["compare"][label].append(first)
        results["sessions"].append(mine)
    if only is None or "load" in only:
        results["load"] = measure_loads(plan, workdir)
    if only is None or "library" in only:
        # Its own "before" (the base of the hot-path work), and the same patches.
        lib_trees = other_trees(library_before, patches or [])
        lib_plan = library.QUICK if plan.reps < Plan.reps else library.LibraryPlan()
        results["library"] = library.measure(lib_plan, [("this tree", None), *lib_trees])
    if only is None or "notebook-library" in only:
        lib_trees = other_trees(library_before, patches or [])
        quick = plan.reps < Plan.reps
        results["library_loaded"] = library_loaded.measure(
            [("this tree", None), *lib_trees], *((1, 3, 500) if quick else ())
        )
    results["elapsed_s"] = time.monotonic() - started
    results["load_average"] = {"start": load_start, "end": list(os.getloadavg())}
    return results
