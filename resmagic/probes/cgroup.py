"""The memory cgroup this process is in (v1 or v2): its limit, usage, working set, peak, OOM kills.

Containers (Docker, Kubernetes, JupyterHub), systemd slices and Slurm jobs cap memory far
below the machine's RAM; what a kernel can run out of is its own cgroup's limit, the least
over the cgroup and its ancestors. Which cgroup that is: :mod:`~resmagic.probes.cgroup_where`;
how its files are read: :mod:`~resmagic.probes.cgroup_files`; the peak's reset:
:mod:`~resmagic.probes.cgroup_peak`. Every reading is None where there is no memory cgroup
(macOS, a bare sandbox).
"""

from __future__ import annotations

import functools
import os

from resmagic.probes.cgroup_files import NO_LIMIT, parse, pread_kept, reader, stat, text
from resmagic.probes.cgroup_peak import read_peak, refused, reset_peak
from resmagic.probes.cgroup_where import Cgroup, own
from resmagic.probes.reading import DeviceMemory, ProbeStatus

__all__ = [
    "NAME",
    "SOURCE",
    "Cgroup",
    "limit_bytes",
    "oom_kills",
    "own",
    "peak_bytes",
    "read",
    "read_peak",
    "reset_peak",
    "status",
    "usage_bytes",
    "working_set_bytes",
]

NAME = "container"
"""How the cgroup's rows name their device."""

SOURCE = "cgroup"
"""How the cgroup's rows name their source."""


def limit_bytes(group: Cgroup | None = None) -> int | None:
    """The least memory limit over the cgroup and its ancestors; None for none."""
    group = group if group is not None else own()
    if group is None:
        return None
    # Through reader(), never an open per call: the store's writer thread reads the limit for
    # a running cell, and a file it opened and closed there was an fd that came and went
    # under the cell (a flaky fd count in a test).
    if group.version == 1:
        limit = stat(group, "hierarchical_memory_limit")
        limit = limit if limit is not None and limit < NO_LIMIT else None
        return limit if limit is not None else parse(text(group, "memory.limit_in_bytes"))
    read = reader(group)
    limits = [parse(read(os.path.join(p, "memory.max"))) for p in group.ancestors()]
    found = [value for value in limits if value is not None]
    return min(found) if found else None


def _counter(group: Cgroup | None, v1: str, v2: str) -> int | None:
    group = group if group is not None else own()
    if group is None:
        return None
    return parse(text(group, v1 if group.version == 1 else v2))


def usage_bytes(group: Cgroup | None = None) -> int | None:
    """Memory charged to the cgroup now, page cache included."""
    return _counter(group, "memory.usage_in_bytes", "memory.current")


def working_set_bytes(group: Cgroup | None = None) -> int | None:
    """Usage less the inactive file cache: what the OOM killer and ``docker stats`` go by."""
    group = group if group is not None else own()
    usage = usage_bytes(group)
    if group is None or usage is None:
        return None
    inactive = stat(group, "total_inactive_file" if group.version == 1 else "inactive_file")
    return max(usage - (inactive or 0), 0)


def peak_bytes(group: Cgroup | None = None) -> int | None:
    """The cgroup's high-water mark (v1 since its last reset, v2 since its creation)."""
    return _counter(group, "memory.max_usage_in_bytes", "memory.peak")


_limit: list[int | None] = []  # the own cgroup's limit, read once (status() reads it again)


def _own_limit() -> int | None:
    if not _limit:
        _limit.append(limit_bytes())
    return _limit[0]


def read() -> list[DeviceMemory]:
    """The ``container`` reading: working set now, the limit as total; none without a limit."""
    limit = _own_limit()
    used = working_set_bytes() if limit is not None else None
    return [] if limit is None or used is None else [DeviceMemory(NAME, used, limit, SOURCE)]


def oom_kills(group: Cgroup | None = None) -> int | None:
    """How many processes the OOM killer has killed in the cgroup (None where not counted)."""
    if group is None:
        # Every gpu_scope reads its own cgroup's counter twice: its path looked up once and
        # the bytes parsed in place, 1.0 us over the pread instead of 1.9 (issue 26, G3).
        path = _own_oom_path()
        return None if path is None else _oom_count(pread_kept(path))
    raw = text(group, _oom_file(group))
    return _oom_count(raw.encode("ascii", "replace") if raw is not None else None)


def _oom_count(text: bytes | None) -> int | None:
    at = text.find(b"oom_kill ") if text is not None else -1
    if text is None or at < 0:
        return None
    end = text.find(b"\n", at)
    digits = text[at + 9 : end if end >= 0 else len(text)].strip()
    return int(digits) if digits.isdigit() else None


@functools.lru_cache(maxsize=1)
def _own_oom_path() -> str | None:
    group = own()
    return None if group is None else group.file(_oom_file(group))


def _oom_file(group: Cgroup) -> str:
    return "memory.oom_control" if group.version == 1 else "memory.events"


def status() -> ProbeStatus:
    """Which cgroup this process is in, its version, and its limit."""
    group = own()
    if group is None:
        return ProbeStatus("container", False, "container: no memory cgroup here")
    _limit.clear()
    limit = _own_limit()
    where = f"container: cgroup v{group.version} {group.path}"
    if limit is None:
        return ProbeStatus("container", True, f"{where}, no limit (so no container row)")
    why = refused()
    peak = f"peak sampled: {why}" if why else "peak exact (shared with the container)"
    return ProbeStatus("container", True, f"{where}, limit {limit >> 20} MiB, {peak}")
