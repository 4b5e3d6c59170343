"""What a ``gpu_scope`` report says beyond its readings: exact workers, container notes, holders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from resmagic.guard import Guard
from resmagic.holders import Holder, held_device, who
from resmagic.probes import cgroup, torch_cuda, workers
from resmagic.probes.reading import DeviceMemory
from resmagic.report import DeviceReport

__all__ = [
    "exact_workers",
    "holders_at_error",
    "holders_named",
    "is_out_of_memory",
    "name_holders",
    "oom_killed",
    "shown",
    "unguarded",
]


def holders_at_error(
    held_by: Mapping[str, Any] | None, exc: BaseException | None
) -> tuple[Holder, ...] | None:
    """At an out-of-memory error, the holders named from its frames (else None)."""
    if exc is None or not is_out_of_memory(exc):
        return None
    return name_holders(held_by, None, exc)


def holders_named(
    held_by: Mapping[str, Any] | None,
    rows: Sequence[DeviceReport],
    at_error: tuple[Holder, ...] | None,
) -> tuple[tuple[Holder, ...], Literal["", "after", "error"]]:
    """A report's holders and when they were named: at the error, else what was left held.

    ``""`` with no holders when neither applies (or nobody gave ``held_by``).
    """
    if at_error is not None:
        return at_error, "error"
    device = held_device(rows) if held_by is not None else None
    left = name_holders(held_by, device, None) if device is not None else None
    return (left, "after") if left is not None else ((), "")


def name_holders(
    held_by: Mapping[str, Any] | None, device: str | None, exc: BaseException | None
) -> tuple[Holder, ...] | None:
    """The three largest holders in ``held_by`` (on ``device``), then ``N more``; never raises."""
    if held_by is None:
        return None
    try:
        return who(held_by, top=None, device=device, error=exc).summarised(3)
    except Exception:  # naming is a courtesy: a walk that breaks says nothing
        return None


def oom_killed(before: int | None) -> tuple[str, ...]:
    """A note when the OOM killer killed processes in this container since ``before`` kills."""
    now = cgroup.oom_kills()
    if before is None or now is None or now <= before:
        return ()
    killed = now - before
    what = "a process" if killed == 1 else f"{killed} processes"
    limit = cgroup.limit_bytes()
    at = f" at its {limit >> 20} MiB limit" if limit is not None else ""
    return (f"container: the OOM killer killed {what} in this cgroup{at} during the block",)


def exact_workers(reading: DeviceMemory) -> DeviceMemory:
    """At the end, workers still running are measured from their ``smaps_rollup`` (exact)."""
    if reading.name != workers.NAME or not reading.used_bytes:
        return reading
    return workers.read_exact()


def shown(row: DeviceReport) -> bool:
    """Every row but a workers row of a block that had no child process."""
    return row.name != workers.NAME or row.peak_bytes > 0


def unguarded(guard: Guard | None) -> tuple[str, ...]:
    """A note when a guard was asked for where there is no limit to guard."""
    if guard is None or guard.armed:
        return ()
    return ("guard: no container memory limit here, so nothing to guard",)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for ``MemoryError`` and torch's CUDA out-of-memory error."""
    return isinstance(exc, MemoryError) or torch_cuda.is_oom(exc)
