"""The own cgroup's peak, reset at a scope's start and read at its end, where the kernel lets us.

v1 resets ``memory.max_usage_in_bytes`` for every reader; v2 (kernel 6.12 or later) resets
``memory.peak`` for one descriptor only, but lowers what the others read too. So callers
reset only at their outermost scope, and the peak is labelled shared.
"""

from __future__ import annotations

import os

from resmagic.probes.cgroup_files import parse, text
from resmagic.probes.cgroup_where import own

__all__ = ["read_peak", "refused", "reset_peak"]

_peak_fd: int | None = None  # v2: the descriptor whose reset and reads belong to this process;
# v1: the max_usage_in_bytes descriptor resets are written to
_refused = ""  # why the peak cannot be reset here, once found out


def reset_peak() -> bool:
    """Reset the own cgroup's peak to its usage now; False where the kernel refuses."""
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
        return parse(text(group, "memory.max_usage_in_bytes"))
    if _peak_fd is None:
        return None
    try:
        return parse(os.pread(_peak_fd, 64, 0).decode("ascii", "replace"))
    except OSError:
        return None


def refused() -> str:
    """Why the peak cannot be reset here, once a reset was refused; "" until then."""
    return _refused
