"""Host (process) memory: RSS now, and the exact peak from the kernel's high-water mark.

On Linux the peak is exact: ``VmHWM`` in ``/proc/self/status`` is the most RSS the process
ever had, and writing ``5`` to ``/proc/self/clear_refs`` resets it to the current RSS. Where
either is missing (not Linux, or the write is not allowed), :func:`peak_is_exact` is False and
callers sample RSS instead. The ``/proc`` files stay open so a reading costs about a
microsecond instead of an ``open()``.
"""

from __future__ import annotations

import os
import sys
import threading

from resmagic.probes import cgroup
from resmagic.probes.reading import DeviceMemory, ProbeStatus, device_memory

__all__ = [
    "SOURCE",
    "hwm_bytes",
    "peak_is_exact",
    "read",
    "reset_hwm",
    "rss_bytes",
    "status",
    "total_bytes",
]

SOURCE = "RSS"
"""How host rows name their source."""

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_lock = threading.Lock()


class _ProcFiles:
    """Descriptors on this process's /proc files, reopened after a fork."""

    def __init__(self) -> None:
        self.pid = -1
        self.statm: int | None = None
        self.status: int | None = None
        self.clear_refs: int | None = None
        self.clear_refs_error = ""

    def ensure(self) -> _ProcFiles:
        if self.pid == os.getpid():
            return self
        with _lock:
            if self.pid != os.getpid():
                self._open()
        return self

    def _open(self) -> None:
        # After a fork these point at the parent's /proc entries: close and reopen.
        for fd in (self.statm, self.status, self.clear_refs):
            if fd is not None:
                os.close(fd)
        self.statm = _try_open("/proc/self/statm", os.O_RDONLY)
        self.status = _try_open("/proc/self/status", os.O_RDONLY)
        try:
            self.clear_refs = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
            os.write(self.clear_refs, b"5")
            self.clear_refs_error = ""
        except OSError as exc:
            self.clear_refs = None
            self.clear_refs_error = f"cannot reset VmHWM ({exc.strerror or exc})"
        self.pid = os.getpid()


def _try_open(path: str, flags: int) -> int | None:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError:
        return None


_files = _ProcFiles()


def rss_bytes() -> int:
    """Resident set size of this process now, in bytes (``/proc/self/statm``, else psutil)."""
    fd = _files.ensure().statm
    if fd is not None:
        return int(os.pread(fd, 128, 0).split()[1]) * _PAGE
    import psutil

    return int(psutil.Process().memory_info().rss)


def hwm_bytes() -> int | None:
    """Peak RSS since the last :func:`reset_hwm` (``VmHWM``), in bytes; None where unknown."""
    fd = _files.ensure().status
    if fd is None:
        return None
    text = os.pread(fd, 8192, 0)
    start = text.find(b"VmHWM:")
    if start < 0:
        return None
    return int(text[start + 6 : text.index(b"kB", start)]) * 1024


def reset_hwm() -> bool:
    """Reset the peak RSS counter to the current RSS; return False where that is not allowed."""
    fd = _files.ensure().clear_refs
    if fd is None:
        return False
    os.write(fd, b"5")
    return True


def peak_is_exact() -> bool:
    """True when the host peak comes from the kernel counter rather than from sampling."""
    files = _files.ensure()
    return files.clear_refs is not None and files.status is not None


_total: int | None = None


def total_bytes() -> int:
    """Memory this process may use: physical RAM, or the cgroup limit when that is lower."""
    global _total
    if _total is None:
        _total = min(filter(None, (_physical_bytes(), _cgroup_limit_bytes())))
    return _total


def _physical_bytes() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * _PAGE
    except (ValueError, OSError, AttributeError):
        import psutil

        return int(psutil.virtual_memory().total)


def _cgroup_limit_bytes() -> int | None:
    # Containers report the host's RAM through sysconf; the real ceiling is the least limit
    # of this process's own cgroup and its ancestors (not the hierarchy's root).
    return cgroup.limit_bytes()


def read(*, peak: bool = True) -> DeviceMemory:
    """The ``host`` reading: RSS now, the peak counter, and the memory this process may use.

    Args:
        peak: also read the peak counter (``VmHWM``, the costlier half of a reading: the
            kernel formats all of ``/proc/self/status`` for it); False leaves ``peak_bytes``
            None.
    """
    return device_memory(
        "host", rss_bytes(), total_bytes(), SOURCE, peak_bytes=hwm_bytes() if peak else None
    )


def status() -> ProbeStatus:
    """Say whether the host peak is exact here, and if not, why."""
    files = _files.ensure()
    if files.statm is None:
        return ProbeStatus("host", True, f"RSS via psutil on {sys.platform}; peak sampled")
    if files.clear_refs is None or files.status is None:
        reason = files.clear_refs_error or "no /proc/self/status"
        return ProbeStatus("host", True, f"RSS exact, peak sampled: {reason}")
    return ProbeStatus("host", True, "RSS and exact peak (VmHWM)")
