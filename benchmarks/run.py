"""resmagic side by side with the tools users would pick instead, in real ipykernels.

    python benchmarks/run.py [--write docs/benchmarks.md] [--json FILE] [--before REF] [--patch FILE]

One run measures, each tool in a fresh kernel of this interpreter:

1. per-cell overhead over a bare cell, timed inside the kernel over many nested
   ``get_ipython().run_cell(...)`` calls with their output swallowed (no messaging noise);
2. ``%load_ext`` time per tool and whether it imported torch;
3. peak fidelity: what each memory tool reports for cells holding a 400 MiB array;
4. time fidelity: what each tool reports for ``time.sleep(0.2)``;
5. the CPU cost of resmagic's sampler thread at 10 Hz and 20 Hz.

It prints markdown tables and, with ``--write``, regenerates docs/benchmarks.md (with the
machine, the versions and the raw numbers); ``benchmarks/notes.md`` is copied in as the
"profile and fixes" section. ``--before REF`` and ``--patch FILE`` time resmagic's own
sessions again, as of a git ref and with proposed patches applied, in the same run.
"""

from __future__ import annotations

import argparse
import compileall
import dataclasses
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel import Kernel, export, patched

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
ARRAY_BYTES = 400 * MIB
HOLDS = (0.2, 0.02, 0.002)
SLEEP = 0.2


# --- what is measured ---------------------------------------------------------------------


@dataclass
class Session:
    """One fresh kernel: ``setup``, then rounds of ``variants`` (the first is the bare cell).

    A variant is ``(label, before, cell)``; ``before`` runs untimed ahead of each round's
    block and switches the tool off (for the bare cell) or on again.
    """

    name: str
    setup: str
    variants: list[tuple[str, str | None, str]]
    time_cell: str | None = None  # how this tool times `time.sleep(0.2)`
    peak_prefix: str | None = None  # how this tool measures the 400 MiB cell
    reader: str = "stdout"  # "stdout" (parse what it printed) or "resmagic" (history)


NOOP = "%%noop\npass"
BARE = "pass"
# A cell of realistic length: costs that grow with the cell (transforming, compiling and
# naming the body) show here, not on `pass`.
LONG = "\n".join(f"x{i} = {i} * 2" for i in range(100))
LONG_LABEL = " (100 lines)"


def _peer(name: str, setup: str, off: str, on: str, label: str, memory: bool = False) -> Session:
    """A peer that hooks every cell: ``off``/``on`` switch it between the bare and its rounds."""
    return Session(
        name,
        setup=setup,
        variants=[("bare", off, BARE), (label, on, BARE)],
        time_cell="",  # each peer prints a time for every cell
        peak_prefix="" if memory else None,
    )


def sessions(log: str) -> list[Session]:
    load, unload = "%load_ext resmagic", "%unload_ext resmagic"
    return [
        Session(
            "resmagic",
            setup="from inkernel import NOOP_MAGIC; exec(NOOP_MAGIC)",
            variants=[
                ("bare", unload, BARE),
                ("empty cell magic (IPython's floor)", None, NOOP),
                ("%%time", None, "%%time\npass"),
                ("bare, resmagic loaded", load, BARE),
                ("%%timed", None, "%%timed\npass"),
                ("%%gpu_scope --no-panel", None, "%%gpu_scope --no-panel\npass"),
                ("%%gpu_scope -q", None, "%%gpu_scope -q\npass"),
                ("%%gpu_scope (panel on, default)", None, "%%gpu_scope\npass"),
                ("%%experiment_log", None, f"%%experiment_log {log}\npass"),
                (
                    "%%timed + %%gpu_scope + %%experiment_log",
                    None,
                    f"%%timed\n%%gpu_scope\n%%experiment_log {log}\npass",
                ),
                ("bare" + LONG_LABEL, None, LONG),
                ("%%time" + LONG_LABEL, None, "%%time\n" + LONG),
                ("%%timed" + LONG_LABEL, None, "%%timed\n" + LONG),
                ("%%gpu_scope --no-panel" + LONG_LABEL, None, "%%gpu_scope --no-panel\n" + LONG),
            ],
            time_cell="%%timed -q\n",
            peak_prefix="%%gpu_scope -q\n",
            reader="resmagic",
        ),
        _peer(
            "ipython-autotime",
            "pass",
            "%unload_ext autotime",
            "%load_ext autotime",
            label="autotime (every cell)",
        ),
        _peer(
            "ipyexperiments",
            "from ipyexperiments import IPyExperimentsCPU\nexp = IPyExperimentsCPU()",
            "exp.cl.stop()",
            "exp.cl.start()",
            label="IPyExperimentsCPU (every cell)",
            memory=True,
        ),
        _peer(
            "ipython_memory_usage",
            "%load_ext ipython_memory_usage",
            "%imu_stop",
            "%imu_start",
            label="%imu_start (every cell)",
            memory=True,
        ),
        Session(
            "resmagic watch",
            setup="pass",
            variants=[
                ("bare", unload, BARE),
                ("%resmagic watch on (gpu_scope, timed)", f"{load}\n%resmagic watch on", BARE),
                ("%resmagic watch on --scopes timed", "%resmagic watch on --scopes timed", BARE),
            ],
        ),
    ]


LOADS = {
    "resmagic": "%load_ext resmagic",
    "ipython-autotime": "%load_ext autotime",
    "ipython_memory_usage": "%load_ext ipython_memory_usage",
    "ipyexperiments": "from ipyexperiments import IPyExperimentsCPU\nexp = IPyExperimentsCPU()",
}

# How %%time prints its time; the resmagic session also runs it (before loading resmagic).
TIME_BUILTIN = "%%time\n"


@dataclass
class Plan:
    reps: int = 40
    max_cells: int = 100
    budget_s: float = 0.25  # seconds per variant per round, at most (slow peers run fewer cells)
    load_rounds: int = 3
    fidelity_rounds: int = 3
    sampler_s: float = 10.0


QUICK = Plan(reps=5, max_cells=100, budget_s=0.1, load_rounds=1, fidelity_rounds=1, sampler_s=2)


# --- parsing what the peers print -----------------------------------------------------------

_UNITS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "μs": 1e-6, "us": 1e-6, "ns": 1e-9}


def parse_time(tool: str, text: str) -> float | None:
    """Seconds a tool printed for the last cell, or None if it printed none."""
    patterns = {
        "%%time": r"Wall time: ([\d.]+) ?(s|ms|µs|μs|us|ns)\b",
        "ipython-autotime": r"time: ([\d.]+) ?(s|ms|µs|μs|us|ns) \(started",
    }
    if tool in patterns:
        found = re.findall(patterns[tool], text)
        return float(found[-1][0]) * _UNITS[found[-1][1]] if found else None
    if tool == "ipyexperiments":
        found = re.findall(r"Exec time (\d+):(\d\d):(\d\d)\.(\d+)", text)
        if not found:
            return None
        h, m, s, frac = found[-1]
        scale: int = 10 ** len(frac)
        return int(h) * 3600 + int(m) * 60 + int(s) + int(frac) / scale
    if tool == "ipython_memory_usage":
        found = re.findall(r"MiB RAM in ([\d.]+)s", text)
        return float(found[-1]) if found else None
    return None


def parse_peak(tool: str, text: str) -> float | None:
    """Bytes above the cell's start that a tool reported as the cell's peak."""
    if tool == "ipyexperiments":
        # "･ CPU:  consumed  peaked  used-total MB |", integers in MiB (their "MB" is 2**20);
        # peaked = (peak - start) - consumed when consumed > 0, so peak - start = both added.
        found = re.findall(r"CPU:\s+(-?[\d,]+)\s+(-?[\d,]+)\s+(-?[\d,]+) MB", text)
        if not found:
            return None
        consumed, peaked = (int(v.replace(",", "")) for v in found[-1][:2])
        return (peaked + max(consumed, 0)) * MIB
    if tool == "ipython_memory_usage":
        # "used X MiB RAM in ...s ..., peaked Y MiB above final usage": peak - start = X + Y.
        found = re.findall(r"used (-?[\d.]+) MiB RAM in .*?peaked (-?[\d.]+) MiB above", text)
        if not found:
            return None
        used_mib, peaked_mib = (float(v) for v in found[-1])
        return (used_mib + peaked_mib) * MIB
    return None


# --- running it -------------------------------------------------------------------------------


def _say(text: str) -> None:
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
        _say(f"[{s.name}] {', '.join(label for label, _, _ in s.variants)}")
        args = f"reps={plan.reps}, max_cells={plan.max_cells}, budget_s={plan.budget_s}"
        out["cells"] = k.call(f"inkernel.per_cell({s.variants!r}, {args})")
        if light:
            return out
        # The rounds end with the tool switched on: measure what it reports.
        if s.reader == "resmagic":
            out["time_builtin"] = _time_fidelity(k, "%%time", TIME_BUILTIN, plan)
        if s.time_cell is not None:
            _say(f"[{s.name}] time fidelity")
            out["time"] = _time_fidelity(k, s.name, s.time_cell, plan, s.reader)
        if s.peak_prefix is not None:
            _say(f"[{s.name}] peak fidelity")
            out["peak"] = _peak_fidelity(k, s.name, s.peak_prefix, plan, s.reader)
        if s.reader == "resmagic":
            _say(f"[{s.name}] sampler cost")
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
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in LOADS}
    for _ in range(plan.load_rounds):
        for name, code in LOADS.items():
            _say(f"[load] {name}")
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


COMPARED = ("resmagic", "resmagic watch")  # the sessions measured again for --before/--patch


def other_trees(before: str | None, patches: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(label, kernel environment) of each other resmagic to measure beside this tree."""
    trees = []
    if before:
        try:
            folder = export(before)
            compileall.compile_dir(folder, quiet=1)
            short = _git("rev-parse", "--short", before)
            label = f"before ({before})" if short == before else f"before ({before}, {short})"
            trees.append((label, {"PYTHONPATH": folder}))
        except subprocess.CalledProcessError as exc:  # no git, or no such commit here
            _say(f"not measuring {before}: {exc.stderr.decode().strip()}")
    if patches:
        names = ", ".join(Path(p).name for p in patches)
        try:
            folder = patched(patches)
            compileall.compile_dir(folder, quiet=1)
            trees.append(("with the proposed patches", {"PYTHONPATH": folder}))
        except subprocess.CalledProcessError as exc:  # applied upstream, or out of date
            _say(f"not measuring {names}: it does not apply here: {exc.stderr.decode().strip()}")
    return trees


def _pool(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Add a second kernel's rounds to a session's (each round stays paired with its bare)."""
    for label, rounds in more["cells"]["seconds"].items():
        into["cells"]["seconds"][label].extend(rounds)
        threads = into["cells"]["threads"]
        threads[label] = max(threads[label], more["cells"]["threads"][label])


def run_all(
    plan: Plan, only: set[str] | None, before: str | None = None, patches: list[str] | None = None
) -> dict[str, Any]:
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
        # Versions compared side by side get two kernels each, alternating, half the rounds
        # in each: a kernel that happens to start in a slow phase of the machine weighs half.
        half = dataclasses.replace(plan, reps=max(plan.reps // 2, 1))
        mine = measure_session(s, half, workdir)
        others = []
        for label, env in trees:
            _say(f"[{s.name}] again, {label}")
            others.append(measure_session(s, half, workdir, env, light=True))
        _say(f"[{s.name}] second kernels")
        _pool(mine, measure_session(s, half, workdir, light=True))
        for (label, env), first in zip(trees, others, strict=True):
            _pool(first, measure_session(s, half, workdir, env, light=True))
            results["compare"][label].append(first)
        results["sessions"].append(mine)
    if only is None or "load" in only:
        results["load"] = measure_loads(plan, workdir)
    results["elapsed_s"] = time.monotonic() - started
    results["load_average"] = {"start": load_start, "end": list(os.getloadavg())}
    return results


# --- the machine ------------------------------------------------------------------------------

PACKAGES = (
    "resmagic",
    "ipython",
    "ipykernel",
    "jupyter_client",
    "ipywidgets",
    "psutil",
    "numpy",
    "torch",
    "ipython-autotime",
    "ipyexperiments",
    "ipython_memory_usage",
    "memory-profiler",
)


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "gpu": "NVIDIA driver present" if os.path.exists("/proc/driver/nvidia") else "none",
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "commit": _git("rev-parse", "--short", "HEAD")
        + ("+dirty" if _git("status", "--porcelain", "--untracked-files=no", "resmagic") else ""),
        "versions": versions,
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- rendering -------------------------------------------------------------------------------


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}" if abs(seconds) >= 100e-6 else f"{seconds * 1e6:.1f}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def _med(values: list[float]) -> float:
    return statistics.median(values)


@dataclass
class Row:
    label: str
    session: str
    per_cell: float
    overhead: float | None  # median over rounds of (this - the same round's bare cell)
    spread: tuple[float, float] | None  # quartiles of those differences
    over_floor: float | None  # the same against an empty cell magic (resmagic kernel only)
    cells: int
    rounds: list[float]
    target: float | None = None


TARGETS = {
    "%%timed": 25e-6,
    "%%gpu_scope --no-panel": 500e-6,
    "%%gpu_scope -q": 500e-6,
    "%%gpu_scope (panel on, default)": 500e-6,
}
FLOOR = "empty cell magic (IPython's floor)"


def _paired(rounds: list[float], ref: list[float]) -> list[float]:
    return [a - b for a, b in zip(rounds, ref, strict=True)]


def overhead_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    for s in results["sessions"]:
        data = s["cells"]
        seconds = data["seconds"]
        floor = seconds.get(FLOOR)
        for label, rounds in seconds.items():
            if label == "bare" and s["name"] != "resmagic":
                continue  # one bare row (the resmagic kernel's); the others are in the raw numbers
            long = label.endswith(LONG_LABEL)  # measured against the bare cell of its length
            reference = "bare" + LONG_LABEL if long else "bare"
            diffs = None if label == reference else _paired(rounds, seconds[reference])
            over_floor = None
            if floor is not None and label.startswith("%%") and not long:
                over_floor = _med(_paired(rounds, floor))
            q = statistics.quantiles(diffs, n=4) if diffs and len(diffs) > 1 else None
            rows.append(
                Row(
                    label,
                    s["name"],
                    _med(rounds),
                    None if diffs is None else _med(diffs),
                    None if q is None else (q[0], q[2]),
                    over_floor,
                    data["cells"][label],
                    rounds,
                    TARGETS.get(label),
                )
            )
    return rows


def _ratio(value: float | None, ref: float | None) -> str:
    if value is None or ref is None or ref <= 0:
        return ""
    r = value / ref
    if r <= 0:
        return "≈ 0"
    return f"{r:.3f}×" if r < 0.1 else f"{r:.2f}×" if r < 10 else f"{r:,.0f}×"


def _signed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"+{_us(seconds)}" if seconds >= 0 else f"−{_us(-seconds)}"


def overhead_table(results: dict[str, Any]) -> str:
    rows = overhead_rows(results)
    by = {r.label: r for r in rows}
    autotime = by.get("autotime (every cell)")
    ipx = by.get("IPyExperimentsCPU (every cell)")
    others = {
        label: {r.label: r for r in overhead_rows({"sessions": runs})}
        for label, runs in results.get("compare", {}).items()
    }
    head = ["cell", "per cell (µs)", "overhead (µs)", "middle half of rounds (µs)"]
    head += [f"overhead, {label} (µs)" for label in others]
    head += ["over empty cell magic (µs)", "÷ autotime", "÷ ipyexperiments", "target", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [f"`{r.label}`" if r.label.startswith("%") else r.label, _us(r.per_cell)]
        cells.append("—" if r.overhead is None else _signed(r.overhead))
        cells.append("" if r.spread is None else f"{_signed(r.spread[0])} … {_signed(r.spread[1])}")
        for other in others.values():
            o = other.get(r.label)
            cells.append("" if o is None or r.session not in COMPARED else _signed(o.overhead))
        cells.append(_signed(r.over_floor))
        cells.append(_ratio(r.overhead, autotime.overhead if autotime else None))
        cells.append(_ratio(r.overhead, ipx.overhead if ipx else None))
        if r.target is not None and r.overhead is not None:
            cells += [f"≤ +{_us(r.target)}", "yes" if r.overhead <= r.target else "**no**"]
        else:
            cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load_table(results: dict[str, Any]) -> str:
    lines = [
        "| tool | what was run | time (ms, median) | each kernel (ms) | imported torch? | new modules |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in results.get("load", {}).items():
        code = LOADS[name].replace("\n", "; ")
        each = ", ".join(_ms(r["seconds"]) for r in runs)
        torch = "yes" if any(r["torch_after"] and not r["torch_before"] for r in runs) else "no"
        new = int(_med([r["new_modules"] for r in runs]))
        lines.append(
            f"| {name} | `{code}` | {_ms(_med([r['seconds'] for r in runs]))} | {each} | {torch} | {new} |"
        )
    return "\n".join(lines)


def _peak_tools(results: dict[str, Any]) -> list[tuple[str, dict[str, list[float | None]]]]:
    return [(s["name"], s["peak"]) for s in results["sessions"] if "peak" in s]


def peak_table(results: dict[str, Any]) -> str:
    head = "| tool | " + " | ".join(f"held {h * 1e3:g} ms" for h in HOLDS) + " |"
    lines = [head, "|---|" + "---|" * len(HOLDS)]
    for name, values in _peak_tools(results):
        label = "resmagic `%%gpu_scope` (host row)" if name == "resmagic" else name
        cells = []
        for hold in HOLDS:
            got = [v for v in values[str(hold)] if v is not None]
            if not got:
                cells.append("nothing reported")
                continue
            m = _med(got)
            cells.append(f"{m / MIB:,.1f} MiB ({(m / ARRAY_BYTES - 1) * 100:+.1f}%)")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _time_tools(results: dict[str, Any]) -> list[tuple[str, list[dict[str, float | None]]]]:
    out = []
    for s in results["sessions"]:
        if "time_builtin" in s:
            out.append(("IPython `%%time`", s["time_builtin"]))
        if "time" in s:
            label = "resmagic `%%timed`" if s["name"] == "resmagic" else s["name"]
            out.append((label, s["time"]))
    return out


def time_table(results: dict[str, Any]) -> str:
    lines = [
        "| tool | reported (ms, median) | slept (ms, measured in the cell) | reported − slept | each run (ms) |",
        "|---|---|---|---|---|",
    ]
    for label, values in _time_tools(results):
        got = [v for v in values if v["reported"] is not None]
        if not got:
            lines.append(f"| {label} | nothing reported | | | |")
            continue
        reported = _med([v["reported"] or 0.0 for v in got])
        slept = _med([v["slept"] or 0.0 for v in got])
        error = _med([(v["reported"] or 0.0) - (v["slept"] or 0.0) for v in got])
        each = ", ".join(_ms(v["reported"] or 0.0) for v in got)
        lines.append(
            f"| {label} | {_ms(reported)} | {slept * 1e3:.2f} | {error * 1e3:+.2f} ms | {each} |"
        )
    return "\n".join(lines)


def sampler_table(results: dict[str, Any]) -> str:
    lines = [
        "| rate | CPU s per wall s | % of a core | samples/s | CPU per sample (µs) | target | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in results["sessions"]:
        for r in s.get("sampler", []):
            share = r["cpu_s"] / r["wall_s"]
            per = r["cpu_s"] / max(r["samples"], 1)
            hz = 1 / r["interval_s"]
            target = "≤ 1%" if hz == 10 else ""
            met = ("yes" if share <= 0.01 else "**no**") if target else ""
            lines.append(
                f"| {hz:g} Hz | {share:.5f} | {share * 100:.3f}% | {r['samples'] / r['wall_s']:.1f} | {per * 1e6:.1f} | {target} | {met} |"
            )
    return "\n".join(lines)


def raw_section(results: dict[str, Any]) -> str:
    lines = ["Per-cell µs of each round, cells per round, most threads seen in the kernel:", ""]
    runs = [("", s) for s in results["sessions"]]
    runs += [(f"{label}: ", s) for label, more in results.get("compare", {}).items() for s in more]
    for prefix, s in runs:
        data = s["cells"]
        for label, rounds in data["seconds"].items():
            us = ", ".join(f"{v * 1e6:.0f}" for v in rounds)
            lines.append(
                f"- {prefix}{s['name']} / `{label}`: {data['cells'][label]} cells × [{us}], {data['threads'][label]} threads"
            )
    lines += ["", "Peak fidelity, bytes above the cell's start, each run:", ""]
    for name, values in _peak_tools(results):
        for hold, got in values.items():
            lines.append(f"- {name}, held {float(hold) * 1e3:g} ms: {got}")
    lines += ["", "Time fidelity, seconds, each run:", ""]
    for label, timings in _time_tools(results):
        lines.append(f"- {label}: {timings}")
    lines += ["", "Sampler:", ""]
    for s in results["sessions"]:
        for r in s.get("sampler", []):
            lines.append(f"- {json.dumps(r)}")
    lines += ["", "Load:", ""]
    for name, runs in results.get("load", {}).items():
        lines.append(f"- {name}: {json.dumps(runs)}")
    return "\n".join(lines)


def machine_section(m: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    return "\n".join(
        [
            f"- date: {m['date']}",
            f"- machine: {m['cores']} cores, {m['cpu']}, {m['memory_gib']} GiB, {m['os']}, GPU: {m['gpu']}",
            f"- Python {m['python']} ({m['python_executable']})",
            f"- resmagic at commit {m['commit']}",
            f"- versions: {versions}",
        ]
    )


def tables(results: dict[str, Any]) -> str:
    parts = [
        "## 1. Per-cell overhead over a bare cell",
        "",
        overhead_table(results),
        "",
        "## 2. `%load_ext` time (fresh kernel each)",
        "",
        load_table(results),
        "",
        f"## 3. Peak fidelity: a cell holding a {ARRAY_BYTES // MIB} MiB array (true value: "
        f"{ARRAY_BYTES // MIB}.0 MiB above the cell's start)",
        "",
        peak_table(results),
        "",
        f"## 4. Time fidelity: `time.sleep({SLEEP})` (true value: what the cell measured itself)",
        "",
        time_table(results),
        "",
        "## 5. Sampler cost (resmagic's sampler thread reading host memory)",
        "",
        sampler_table(results),
    ]
    return "\n".join(parts)


METHOD = """\
Regenerated by `make bench` (`benchmarks/run.py --write docs/benchmarks.md`); do not edit by
hand — the "Profile and fixes" section comes from `benchmarks/notes.md`.

How it is measured. Every tool runs in a fresh ipykernel started through jupyter_client from
the benchmark venv's Python, with an empty IPYTHONDIR. Per-cell times are taken *inside* the
kernel: `get_ipython().run_cell(cell, store_history=False)` called back to back, output
swallowed by `IPython.utils.capture.capture_output`, so zmq messaging stays out. Each kernel
first times bare `pass` cells, then loads its tool and times its cells; the rounds of the
variants in one kernel are interleaved. A number is the median over rounds of the mean per
cell; "overhead" is that minus the same kernel's bare cell. Slow peers run fewer cells per
round (a time budget per round); the raw section says how many. Event-hook peers (autotime,
ipyexperiments, ipython_memory_usage, resmagic watch mode) fire on nested `run_cell` as on
real cells. Fidelity cells are real top-level execute requests; peers' numbers are parsed
from what they print, resmagic's read from `resmagic.history()[-1]`. The "before" and
"with the proposed patches" columns time resmagic as of that commit and with
`benchmarks/proposed-*.patch` applied (each put first on the kernel's PYTHONPATH); every
version compared gets two kernels, alternating with the others, half the rounds in each.
"""


def _loads(results: dict[str, Any], when: str) -> str:
    loads = results.get("load_average", {}).get(when)
    return "/".join(f"{v:.2f}" for v in loads) if loads else "?"


def render(results: dict[str, Any]) -> str:
    notes_path = ROOT / "benchmarks" / "notes.md"
    notes = notes_path.read_text().strip() if notes_path.exists() else ""
    parts = [
        "# Benchmarks: resmagic beside ipython-autotime, ipyexperiments, ipython_memory_usage",
        "",
        machine_section(results["machine"]),
        f"- whole run: {results.get('elapsed_s', 0) / 60:.1f} min; load average (1, 5, 15 min)"
        f" at start {_loads(results, 'start')}, at end {_loads(results, 'end')}",
        "",
        METHOD,
        tables(results),
        "",
    ]
    if notes:
        parts += [notes, ""]
    parts += ["## Raw numbers", "", raw_section(results), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", metavar="MD", help="regenerate this markdown file")
    parser.add_argument("--json", metavar="FILE", help="save the raw results as JSON")
    parser.add_argument(
        "--before", metavar="REF", help="also time resmagic as of this git ref (its own column)"
    )
    parser.add_argument(
        "--patch",
        action="append",
        default=[],
        metavar="FILE",
        help="also time this tree with this patch applied (repeatable; one column for all)",
    )
    parser.add_argument("--render", metavar="FILE", help="render a saved --json, measure nothing")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for trying the script")
    parser.add_argument(
        "--only", help="comma list of sessions (resmagic, ipython-autotime, ..., load)"
    )
    args = parser.parse_args(argv)
    if args.render:
        results = json.loads(Path(args.render).read_text())
    else:
        only = set(args.only.split(",")) if args.only else None
        results = run_all(QUICK if args.quick else Plan(), only, args.before, args.patch)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(tables(results))
    if args.write:
        Path(args.write).write_text(render(results))
        _say(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
