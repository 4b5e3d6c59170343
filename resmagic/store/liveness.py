"""Whether the process that wrote a row is still alive: host, boot, pid and its start time.

A pid alone is not enough: pids are reused, and a second kernel on the same notebook is
alive. A process is the same one when the host and the boot are the same and the pid's
start time (``/proc/PID/stat`` field 22, clock ticks since boot) matches; a zombie counts
as dead (its parent has not reaped it yet, it runs no code).
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass

__all__ = ["Identity", "alive", "me"]


@dataclass(frozen=True, slots=True)
class Identity:
    """What names one process across the machines and boots that may share a store."""

    host: str
    pid: int
    boot: str | None
    pid_start: int | None


def _boot() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in ticks) of ``pid`` from ``/proc``, or None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # the name in parentheses may hold spaces
    if len(fields) < 20 or not fields[19].isdigit():
        return None
    return fields[0], int(fields[19])


@functools.lru_cache(maxsize=4)
def _me(pid: int) -> Identity:
    stat = _stat(pid)
    return Identity(socket.gethostname(), pid, _boot(), stat[1] if stat else None)


def me() -> Identity:
    """This process (looked up once per pid, so a forked child is itself)."""
    return _me(os.getpid())


def alive(other: Identity) -> bool | None:
    """True or False for a process of this host; None when it ran on another host (unknown)."""
    here = me()
    if other.host != here.host:
        return None
    if other.boot is not None and here.boot is not None and other.boot != here.boot:
        return False  # the machine rebooted since
    if other.pid == here.pid and other.pid_start == here.pid_start:
        return True
    stat = _stat(other.pid)
    if stat is None:
        if os.path.isdir("/proc/self"):
            return False  # /proc works here, and has no such pid
        return _signal_alive(other.pid)
    state, started = stat
    if state in ("Z", "X", "x"):
        return False
    return other.pid_start is None or started == other.pid_start


def _signal_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
