"""The machine a run was measured on: CPU, memory, Python, commit and package versions.

Also ``git``, which answers "unknown" where there is no git or no repository.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

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
    """Where and with what this run measures: the "machine" entry of the results."""
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
        "commit": git("rev-parse", "--short", "HEAD")
        + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "resmagic") else ""),
        "versions": versions,
    }


def git(*args: str) -> str:
    """``git ARGS`` in this repository, its stdout stripped; "unknown" if it fails."""
    try:
        return subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
