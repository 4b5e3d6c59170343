"""What a ``gpu_scope`` report says beyond its readings: children, container notes, holders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from resmagic.guard import Guard
from resmagic.holders import Holder, held_device, who
from resmagic.probes import cgroup, host, launched, torch_cuda, workers
from resmagic.probes.probe import Wants, guarded
from resmagic.probes.reading import DeviceMemory
from resmagic.ranktable import is_rank_row
from resmagic.report import DeviceReport
from resmagic.sampler import Watch

__all__ = [
    "ended_ranks",
    "exact_children",
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


def exact_children(readings: list[DeviceMemory], wants: Wants) -> list[DeviceMemory]:
    """At the end, children still running (workers, ranks) measured from ``smaps_rollup``.

    Exact where the sampled rows say a child holds memory; the readings as they were when
    none does, or when the exact reading fails.
    """
    if not any(r.used_bytes for r in readings if _of_children(r.name)):
        return readings
    exact, failure = guarded(workers.SOURCE, lambda: launched.read(wants, exact=True))
    if failure is not None:
        return readings
    first = next(i for i, r in enumerate(readings) if _of_children(r.name))
    rest = [r for r in readings if not _of_children(r.name)]
    return rest[:first] + exact + rest[first:]


def ended_ranks(watch: Watch | None, after: Sequence[DeviceMemory]) -> list[DeviceMemory]:
    """A reading of 0 bytes for each launched rank the sampler saw that ended before the end.

    ``mp.spawn`` returns when its ranks have ended: their rows keep the peak the sampler
    saw (sampled), with nothing after.
    """
    if watch is None:
        return []
    there = {(r.name, r.source) for r in after}
    total = host.total_bytes()
    return [
        DeviceMemory(name, 0, total, source)
        for name, source in list(watch.peaks)
        if is_rank_row(name) and (name, source) not in there
    ]


def _of_children(name: str) -> bool:
    return name == workers.NAME or is_rank_row(name)


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
