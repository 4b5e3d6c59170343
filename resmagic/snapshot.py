"""The kernel's memory at a glance, as plain JSON: what the status bar item shows.

One :func:`snapshot` per poll: every GPU (allocator and NVML), this process's host row, the
container's row where a cgroup limits it, and the running (or last) cell's exact peak from a
:class:`CellPeaks`. It reads only what costs no CUDA context (the probes see to that) and never
raises: a source that fails gives no numbers and a note that says why.
"""

from __future__ import annotations

import threading
from typing import Any

from resmagic._version import __version__
from resmagic.probes import cgroup, peaks, sources, table
from resmagic.probes.reading import DeviceMemory

__all__ = ["SCHEMA", "CellPeaks", "snapshot"]

SCHEMA = 1
"""The block's version: the frontend reads ``resmagic.schema`` before anything else."""

Json = dict[str, Any]


class CellPeaks:
    """The exact peak of the running top-level cell, readable while it runs, and of the last.

    Opens one frame per cell on each probe's shared peak counter (its ``peak_stack``,
    :mod:`resmagic.probes.peaks`), so scopes inside the cell keep their own peaks, and
    :meth:`live` peeks at it from any thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stacks = [s for p in table.PROBES if (s := p.peak_stack) is not None]
        self._frames: list[peaks.Peaks] | None = None
        self.number: int | None = None
        self.running = False
        self._last: peaks.Peaks = {}

    def start(self, number: int | None) -> None:
        """A cell starts: ``In[number]`` (None for a cell that is not numbered)."""
        with self._lock:
            if self._frames is not None:  # its end never came: close it first
                self._end()
            self._frames = [stack.push() for stack in self._stacks]
            self.number, self.running = number, True

    def end(self) -> None:
        """The cell ended: its peaks stay readable until the next one starts."""
        with self._lock:
            if self._frames is not None:
                self._end()

    def _end(self) -> None:
        frames = self._frames
        assert frames is not None
        self._frames, self.running = None, False
        # A scope may still be open above this frame (its post_run_cell hook runs after
        # ours): peek folds in its peak so far, which pop alone would leave to the scope.
        self._last = self._peek(frames)
        for stack, frame in zip(self._stacks, frames, strict=True):
            stack.pop(frame)

    def _peek(self, frames: list[peaks.Peaks]) -> peaks.Peaks:
        out: peaks.Peaks = {}
        for stack, frame in zip(self._stacks, frames, strict=True):
            out.update(stack.peek(frame))
        return out

    def live(self) -> tuple[int | None, bool, peaks.Peaks]:
        """(cell number, still running, peak per device name) of the running or last cell."""
        with self._lock:
            if self._frames is None:
                return self.number, False, dict(self._last)
            return self.number, True, self._peek(self._frames)


def _every(index: int) -> bool:
    return True


def _devices(cell_peaks: peaks.Peaks, notes: list[str]) -> list[Json]:
    """One entry per GPU: this process's use (a probe of its own) beside the device-wide one."""
    allocator: dict[str, DeviceMemory] = {}  # this process's: allocated, reserved, its peak
    device_wide: dict[str, DeviceMemory] = {}  # every process's: NVML's used and total
    empty = []
    for probe in table.GPU:  # a failure is noted as it happens, why a probe has none after
        rows, failure = probe.read(_every)
        if failure is not None:
            notes.append(failure)
        (device_wide if probe.wide else allocator).update({m.name: m for m in rows})
        if not rows:
            empty.append(probe)
    notes.extend(str(probe.status()) for probe in empty)
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
    rows, failure = sources.HOST.read(_every, peak=False)
    if failure is not None:
        notes.append(failure)
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
