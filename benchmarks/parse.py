"""Reading what the peers print: the seconds and peak bytes each reports for a cell.

Each returns None when the tool printed nothing it could parse.
"""

from __future__ import annotations

import re

from plan import MIB

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
