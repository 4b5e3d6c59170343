"""A running cell's live figures: what its running row says while it runs, sampled off the cell.

The writer thread samples each running cell about once a second with the cell's own reader
(its ``gpu_scope``'s readings, else the host row alone) and writes the figures into its
running row, so a kernel that dies in a cell leaves where and at how much.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from resmagic.probes import cgroup, host
from resmagic.probes.reading import DeviceMemory
from resmagic.store.rows import CellRun

__all__ = ["Reader", "host_reading", "sample"]

Reader = Callable[[], Sequence[DeviceMemory]]
"""What a running cell is sampled by."""


def host_reading() -> list[DeviceMemory]:
    """The host row alone: what a running cell without ``gpu_scope`` is sampled by."""
    return [host.read(peak=False)]


def sample(run: CellRun, read: Reader) -> None:
    """Fold one reading of ``read`` into ``run.live``: before, peak so far, now, per device.

    The first sample takes "before" from the readings the cell's scope opened with, where it
    has them: the writer samples a cell first a batch after it started, and a cell that
    allocated 160 MiB at once read +0 MiB in its running row (and in the ``died`` row of a
    kernel killed in it).
    """
    try:
        if not run.live and run.opened is not None:
            _fold(run, run.opened(), opening=True)
        readings = read()
    except Exception:
        return  # a probe failing mid-cell costs the live figure, never the row
    _fold(run, readings)


def _fold(run: CellRun, readings: Sequence[DeviceMemory], opening: bool = False) -> None:
    for r in readings:
        key = f"{r.name} {r.source}"
        row = run.live.get(key)
        # an opening reading's peak is the one before the cell (the process's high-water mark)
        used = r.used_bytes if opening else max(r.used_bytes, r.peak_bytes or 0)
        if row is None:
            run.live[key] = {
                "name": r.name,
                "source": r.source,
                "before_bytes": r.used_bytes,
                "peak_bytes": used,
                "after_bytes": r.used_bytes,
                "total_bytes": r.total_bytes,
                "limited": r.name == "host" and cgroup.limit_bytes() is not None,
            }
        else:
            row["peak_bytes"] = max(row["peak_bytes"], used)
            row["after_bytes"] = r.used_bytes
