"""The kernel's memory at a glance, as plain JSON: what the status bar item shows.

One :func:`snapshot` per poll: every GPU (allocator and NVML), this process's host row, the
container's row where a cgroup limits it, and the running (or last) cell's exact peak from a
:class:`CellPeaks`. It reads only what costs no CUDA context (the probes see to that) and never
raises: a source that fails gives no numbers and a note that says why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from resmagic._version import __version__
from resmagic.probes import cgroup, host, nvml, peaks, torch_cuda
from resmagic.probes.reading import DeviceMemory
from resmagic.probes.sources import describe_failure

__all__ = ["SCHEMA", "CellPeaks", "snapshot"]

SCHEMA = 1
"""The block's version: the frontend reads ``resmagic.schema`` before anything else."""

Json = dict[str, Any]


class CellPeaks:
    """The exact peak of the running top-level cell, readable while it runs, and of the last.

    Opens one frame on the shared peak counters (:mod:`resmagic.probes.peaks`) per cell, so
    scopes inside the cell keep their own peaks, and :meth:`live` peeks at it from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames: tuple[peaks.Peaks, peaks.Peaks] | None = None
        self.number: int | None = None
        self.running = False
        self._last: peaks.Peaks = {}

    def start(self, number: int | None) -> None:
        """A cell starts: ``In[number]`` (None for a cell that is not numbered)."""
        with self._lock:
            if self._frames is not None:  # its end never came: close it first
                self._end()
            self._frames = (peaks.torch_peaks.push(), peaks.host_peaks.push())
            self.number, self.running = number, True

    def end(self) -> None:
        """The cell ended: its peaks stay readable until the next one starts."""
        with self._lock:
            if self._frames is not None:
                self._end()

    def _end(self) -> None:
        assert self._frames is not None
        gpu, cpu = self._frames
        self._frames, self.running = None, False
        # A scope may still be open above this frame (its post_run_cell hook runs after
        # ours): peek folds in its peak so far, which pop alone would leave to the scope.
        self._last = {**peaks.torch_peaks.peek(gpu), **peaks.host_peaks.peek(cpu)}
        peaks.torch_peaks.pop(gpu)
        peaks.host_peaks.pop(cpu)

    def live(self) -> tuple[int | None, bool, peaks.Peaks]:
        """(cell number, still running, peak per device name) of the running or last cell."""
        with self._lock:
            if self._frames is None:
                return self.number, False, dict(self._last)
            gpu, cpu = self._frames
            values = {**peaks.torch_peaks.peek(gpu), **peaks.host_peaks.peek(cpu)}
            return self.number, True, values


def _guarded(
    source: str, notes: list[str], read: Callable[[], Iterable[DeviceMemory]]
) -> list[DeviceMemory]:
    try:
        return list(read())
    except Exception as exc:  # a driver failing mid-read: no numbers, and why
        notes.append(describe_failure(source, exc))
        return []


def _devices(cell_peaks: peaks.Peaks, notes: list[str]) -> list[Json]:
    allocator = (
        {m.name: m for m in _guarded(torch_cuda.SOURCE, notes, torch_cuda.read_all)}
        if torch_cuda.ready()
        else {}
    )
    device_wide = {m.name: m for m in _guarded(nvml.SOURCE, notes, nvml.read_all)}
    if not allocator:
        notes.append(str(torch_cuda.status()))
    if not device_wide:
        notes.append(str(nvml.status()))
    out = []
    for name in sorted(allocator.keys() | device_wide.keys(), key=_index):
        mine, wide = allocator.get(name), device_wide.get(name)
        either = mine or wide
        out.append(
            {
                "name": name,
                "allocated": mine.used_bytes if mine else None,
                "reserved": mine.reserved_bytes if mine else None,
                "total": either.total_bytes if either else None,
                "peak": cell_peaks.get(name) if mine else None,
                "nvml_used": wide.used_bytes if wide else None,
                "nvml_total": wide.total_bytes if wide else None,
            }
        )
    return out


def _index(name: str) -> int:
    return int(name.partition(":")[2] or 0)


def _container() -> Json | None:
    group = cgroup.own()
    limit = cgroup.limit_bytes(group) if group is not None else None
    if group is None or limit is None:
        return None
    return {
        "cgroup": group.path,
        "version": group.version,
        "limit": limit,
        "usage": cgroup.usage_bytes(group),
        "working_set": cgroup.working_set_bytes(group),
        "peak": cgroup.peak_bytes(group),
    }


def snapshot(cells: CellPeaks) -> Json:
    """The ``resmagic`` block of a ``usage_reply``: bytes as ints, None where unknown."""
    number, running, cell_peaks = cells.live()
    notes: list[str] = []
    devices = _devices(cell_peaks, notes)
    rows = _guarded(host.SOURCE, notes, lambda: [host.read(peak=False)])
    return {
        "schema": SCHEMA,
        "version": __version__,
        "cell": {"number": number, "running": running},
        "devices": devices,
        "host": {
            "rss": rows[0].used_bytes if rows else None,
            "total": rows[0].total_bytes if rows else None,
            "peak": cell_peaks.get("host"),
        },
        "container": _container(),
        "notes": notes,
    }
