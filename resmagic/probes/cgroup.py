"""The memory cgroup this process is in (v1 or v2): its limit, usage, working set, peak, OOM kills.

Containers (Docker, Kubernetes, JupyterHub), systemd slices and Slurm jobs cap memory far
below the machine's RAM; what a kernel can run out of is its own cgroup's limit, the least
over the cgroup and its ancestors. The process's cgroup is read from ``/proc/self/cgroup``
and located through ``/proc/self/mountinfo``, never assumed to be the hierarchy's root.
Every reading is None where there is no memory cgroup (macOS, a bare sandbox).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

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

_NO_LIMIT = 1 << 60  # v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages)


@dataclass(frozen=True, slots=True)
class Cgroup:
    """A memory cgroup: its version, its folder, and the folder of its hierarchy's mount."""

    version: int
    path: str
    mount: str

    def file(self, name: str) -> str:
        """The path of one of the cgroup's files, e.g. ``memory.max``."""
        return os.path.join(self.path, name)

    def ancestors(self) -> list[str]:
        """This cgroup's folder and every parent up to the mount, innermost first."""
        out, path = [self.path], self.path
        while path != self.mount and os.path.dirname(path) != path:
            path = os.path.dirname(path)
            out.append(path)
        return out


def own(proc: str = "/proc/self") -> Cgroup | None:
    """The memory cgroup of a process (default: this one, looked up once), or None."""
    if proc == "/proc/self":
        return _self()
    return _lookup(proc)


@functools.lru_cache(maxsize=1)
def _self() -> Cgroup | None:
    return _lookup("/proc/self")


def _lookup(proc: str) -> Cgroup | None:
    try:
        with open(os.path.join(proc, "cgroup")) as f:
            lines = f.read().splitlines()
        with open(os.path.join(proc, "mountinfo")) as f:
            mounts = f.read().splitlines()
    except OSError:
        return None
    v1 = next((_rel(line) for line in lines if "memory" in _controllers(line)), None)
    if v1 is not None:
        mount = _mount(mounts, lambda kind, options: kind == "cgroup" and "memory" in options)
        return _located(1, v1, mount)
    v2 = next((_rel(line) for line in lines if line.startswith("0::")), None)
    mount = _mount(mounts, lambda kind, options: kind == "cgroup2")
    return _located(2, v2, mount) if v2 is not None else None


def _controllers(line: str) -> list[str]:
    parts = line.split(":", 2)
    return parts[1].split(",") if len(parts) == 3 else []


def _rel(line: str) -> str:
    return line.split(":", 2)[2]


def _mount(mounts: list[str], wanted: Callable[[str, list[str]], bool]) -> tuple[str, str] | None:
    """(root inside the hierarchy, mount point) of the first mount that ``wanted`` accepts."""
    for line in mounts:
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 5 and len(tail) >= 3 and wanted(tail[0], tail[2].split(",")):
            return fields[3], fields[4]
    return None


def _located(version: int, rel: str, mount: tuple[str, str] | None) -> Cgroup | None:
    if mount is None:
        return None
    root, point = mount
    inner = os.path.relpath(rel, root) if rel.startswith(root) else rel.lstrip("/")
    path = os.path.normpath(os.path.join(point, "" if inner == "." else inner))
    return Cgroup(version, path, point) if os.path.isdir(path) else None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


_fds: dict[str, int] = {}  # files of this process's own cgroup, read on every sample: kept
# open (a cgroup file is the same file in a forked child, unlike /proc/self)


def _read_kept(path: str) -> str | None:
    """``path``'s text through a descriptor kept open: ~1 µs instead of ~16 µs."""
    raw = _pread_kept(path)
    return raw.decode("ascii", "replace") if raw is not None else None


def _pread_kept(path: str) -> bytes | None:
    """``path``'s bytes through a descriptor kept open (see :func:`_read_kept`)."""
    fd = _fds.get(path)
    try:
        if fd is None:
            fd = _fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return os.pread(fd, 16384, 0)
    except OSError:
        return None


def _text(group: Cgroup, name: str) -> str | None:
    return _reader(group)(group.file(name))


def _reader(group: Cgroup) -> Callable[[str], str | None]:
    """How ``group``'s files are read: kept open for the own cgroup (its ancestors' too)."""
    # Only the own cgroup's files are kept open: another cgroup (a test's) may be removed
    # and made again under the same path, and a kept descriptor would read the old one.
    # The own cgroup's ancestors outlive it.
    return _read_kept if group is own() else _read


def _parse(text: str | None) -> int | None:
    text = (text or "").strip()
    return int(text) if text.isdigit() and int(text) < _NO_LIMIT else None


def _stat(group: Cgroup, key: str) -> int | None:
    # A find, not a split into lines: the sampler reads this file ten times a second.
    text = "\n" + (_text(group, "memory.stat") or "")
    at = text.find(f"\n{key} ")
    if at < 0:
        return None
    value = text[at + len(key) + 2 :].split("\n", 1)[0].strip()
    return int(value) if value.isdigit() else None


def limit_bytes(group: Cgroup | None = None) -> int | None:
    """The least memory limit over the cgroup and its ancestors; None for none."""
    group = group if group is not None else own()
    if group is None:
        return None
    # Through _reader, never an open per call: the store's writer thread reads the limit for
    # a running cell, and a file it opened and closed there was an fd that came and went
    # under the cell (a flaky fd count in a test).
    if group.version == 1:
        limit = _stat(group, "hierarchical_memory_limit")
        limit = limit if limit is not None and limit < _NO_LIMIT else None
        return limit if limit is not None else _parse(_text(group, "memory.limit_in_bytes"))
    read = _reader(group)
    limits = [_parse(read(os.path.join(p, "memory.max"))) for p in group.ancestors()]
    found = [value for value in limits if value is not None]
    return min(found) if found else None


def _counter(group: Cgroup | None, v1: str, v2: str) -> int | None:
    group = group if group is not None else own()
    if group is None:
        return None
    return _parse(_text(group, v1 if group.version == 1 else v2))


def usage_bytes(group: Cgroup | None = None) -> int | None:
    """Memory charged to the cgroup now, page cache included."""
    return _counter(group, "memory.usage_in_bytes", "memory.current")


def working_set_bytes(group: Cgroup | None = None) -> int | None:
    """Usage less the inactive file cache: what the OOM killer and ``docker stats`` go by."""
    group = group if group is not None else own()
    usage = usage_bytes(group)
    if group is None or usage is None:
        return None
    inactive = _stat(group, "total_inactive_file" if group.version == 1 else "inactive_file")
    return max(usage - (inactive or 0), 0)


def peak_bytes(group: Cgroup | None = None) -> int | None:
    """The cgroup's high-water mark (v1 since its last reset, v2 since its creation)."""
    return _counter(group, "memory.max_usage_in_bytes", "memory.peak")


_peak_fd: int | None = None  # v2: the descriptor whose reset and reads belong to this process;
# v1: the max_usage_in_bytes descriptor resets are written to
_refused = ""  # why the peak cannot be reset here, once found out


def reset_peak() -> bool:
    """Reset the own cgroup's peak to its usage now; False where the kernel refuses.

    v1 resets ``memory.max_usage_in_bytes`` for every reader; v2 (kernel 6.12 or later)
    resets ``memory.peak`` for one descriptor only, but lowers what the others read too.
    So callers reset only at their outermost scope, and the peak is labelled shared.
    """
    global _peak_fd, _refused
    group = own()
    if group is None or _refused:
        return False
    try:
        if _peak_fd is None:
            name, flags = ("memory.max_usage_in_bytes", os.O_WRONLY)
            if group.version == 2:
                name, flags = ("memory.peak", os.O_RDWR)
            _peak_fd = os.open(group.file(name), flags | os.O_CLOEXEC)
        os.write(_peak_fd, b"0" if group.version == 1 else b"reset\n")
        return True
    except OSError as exc:  # v2 before 6.12: EINVAL; a read-only cgroupfs: EACCES/EROFS
        _refused = f"cannot reset the peak ({exc.strerror or exc})"
        return False


def read_peak() -> int | None:
    """The own cgroup's peak since :func:`reset_peak` (None before a reset succeeded)."""
    group = own()
    if group is None or _refused:
        return None
    if group.version == 1:
        return peak_bytes(group)
    if _peak_fd is None:
        return None
    try:
        return _parse(os.pread(_peak_fd, 64, 0).decode("ascii", "replace"))
    except OSError:
        return None


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
        return None if path is None else _oom_count(_pread_kept(path))
    text = _text(group, _oom_file(group))
    return _oom_count(text.encode("ascii", "replace") if text is not None else None)


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
    peak = f"peak sampled: {_refused}" if _refused else "peak exact (shared with the container)"
    return ProbeStatus("container", True, f"{where}, limit {limit >> 20} MiB, {peak}")
