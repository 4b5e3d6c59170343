"""Reading a memory cgroup's files: the own cgroup's through descriptors kept open.

The sampler and the store's writer thread read these files many times a second; a file
opened and closed on another thread is also an fd that comes and goes under a cell (a flaky
fd count in a test), so the own cgroup's files are opened once and read with ``pread``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from resmagic.probes.cgroup_where import Cgroup, own

__all__ = ["NO_LIMIT", "parse", "pread_kept", "reader", "stat", "text"]

NO_LIMIT = 1 << 60
"""v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages)."""


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
    raw = pread_kept(path)
    return raw.decode("ascii", "replace") if raw is not None else None


def pread_kept(path: str) -> bytes | None:
    """``path``'s bytes through a descriptor kept open (None where it cannot be read)."""
    fd = _fds.get(path)
    try:
        if fd is None:
            fd = _fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return os.pread(fd, 16384, 0)
    except OSError:
        return None


def text(group: Cgroup, name: str) -> str | None:
    """The text of ``group``'s file ``name`` (None where it cannot be read)."""
    return reader(group)(group.file(name))


def reader(group: Cgroup) -> Callable[[str], str | None]:
    """How ``group``'s files are read: kept open for the own cgroup (its ancestors' too)."""
    # Only the own cgroup's files are kept open: another cgroup (a test's) may be removed
    # and made again under the same path, and a kept descriptor would read the old one.
    # The own cgroup's ancestors outlive it.
    return _read_kept if group is own() else _read


def parse(raw: str | None) -> int | None:
    """A file's number of bytes; None for none, unreadable, or v1's "no limit"."""
    raw = (raw or "").strip()
    return int(raw) if raw.isdigit() and int(raw) < NO_LIMIT else None


def stat(group: Cgroup, key: str) -> int | None:
    """One counter of ``group``'s ``memory.stat`` (None where it is not there)."""
    # A find, not a split into lines: the sampler reads this file ten times a second.
    raw = "\n" + (text(group, "memory.stat") or "")
    at = raw.find(f"\n{key} ")
    if at < 0:
        return None
    value = raw[at + len(key) + 2 :].split("\n", 1)[0].strip()
    return int(value) if value.isdigit() else None
