"""The one probe table: every memory source resmagic reads, in the order it shows them.

``gpu_scope`` reads the host-like probes always and the GPU ones unless ``device="host"``;
``%resmagic status`` says each one's status; the status bar's snapshot reads the GPU ones
and opens the running cell's frame on each ``peak_stack``. A new source is a module with a
:class:`~resmagic.probes.probe.Probe` object in it and one line here (CONTRIBUTING.md,
"Adding a probe").
"""

from __future__ import annotations

from resmagic.probes import sources
from resmagic.probes.probe import Probe

__all__ = ["GPU", "HOST_LIKE", "HOST_ROWS", "PROBES", "WIDE_SOURCES"]

PROBES: tuple[Probe, ...] = (
    sources.HOST,
    sources.WORKERS,
    sources.CONTAINER,
    sources.ALLOCATOR,
    sources.NVML,
)
"""Every probe, host-like ones first (a report's rows and ``%resmagic status`` follow it)."""

HOST_LIKE: tuple[Probe, ...] = tuple(p for p in PROBES if p.kind == "host")
"""The probes of host memory: this process, its child processes, its cgroup."""

GPU: tuple[Probe, ...] = tuple(p for p in PROBES if p.kind == "gpu")
"""The probes with a row per GPU."""

HOST_ROWS: tuple[str, ...] = tuple(p.row for p in HOST_LIKE if p.row is not None)
"""The names of host-like rows (``host``, ``workers``, ``container``): not GPUs."""

WIDE_SOURCES: frozenset[str] = frozenset(p.source for p in PROBES if p.wide)
"""Sources whose rows count other processes' memory too: never what a block left held."""
