"""The markdown tables of a run's results: overhead, load time, peak, time, sampler, library.

Pure functions of the raw results (``run_all``'s dict, or a saved ``--json``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import library
import library_loaded
from plan import ARRAY_BYTES, COMPARED, HOLDS, LOADS, LONG_LABEL, MIB, SLEEP


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
    """One row per cell variant of every session (one bare row: the resmagic kernel's)."""
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


def peak_tools(results: dict[str, Any]) -> list[tuple[str, dict[str, list[float | None]]]]:
    """(session, peaks by hold) of each session that measured peak fidelity."""
    return [(s["name"], s["peak"]) for s in results["sessions"] if "peak" in s]


def peak_table(results: dict[str, Any]) -> str:
    head = "| tool | " + " | ".join(f"held {h * 1e3:g} ms" for h in HOLDS) + " |"
    lines = [head, "|---|" + "---|" * len(HOLDS)]
    for name, values in peak_tools(results):
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


def time_tools(results: dict[str, Any]) -> list[tuple[str, list[dict[str, float | None]]]]:
    """(tool label, runs) of each tool that measured time fidelity, ``%%time`` included."""
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
    for label, values in time_tools(results):
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


def library_section(results: dict[str, Any]) -> list[str]:
    """Table 6 and its notes, where the run measured the library form."""
    lib = results.get("library")
    if not lib:
        return []
    return [
        "",
        "## 6. The library form, per block (fresh interpreters, no IPython)",
        "",
        library.table(lib),
        "",
        library.notes(lib),
    ]


def library_loaded_section(results: dict[str, Any]) -> list[str]:
    """Table 7, where the run measured the library form in a notebook's shell."""
    loaded = results.get("library_loaded")
    if not loaded:
        return []
    return [
        "",
        "## 7. The library form in a notebook (resmagic loaded, run store on), per block",
        "",
        library_loaded.table(loaded),
    ]


def tables(results: dict[str, Any]) -> str:
    """The tables under their headings: what ``run.py`` prints."""
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
        *library_section(results),
        *library_loaded_section(results),
    ]
    return "\n".join(parts)
