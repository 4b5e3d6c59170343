"""This process's child processes (DataLoader workers, pools, subprocesses): their unique memory.

Summed RSS is wrong for forked workers: each counts every page it still shares with this
process (a 1 GiB kernel with four idle forked workers sums to 5 GiB of RSS; what they really
add is their unique set). The unique set (USS: private pages, from ``/proc/PID/smaps_rollup``)
costs ~11 ms per GiB of RSS, too slow for 10 samples a second; RSS (``/proc/PID/statm``,
~10 µs) is cheap. So each worker's shared part is read once, when the sampler first sees it
(RSS less USS then; read again as copy-on-write unshares pages, as often as keeps the
reads under 0.5 % of a core, and whenever its RSS grew by an eighth: a forked child maps its
parent's files without their pages and takes them, shared, as it runs), and each sample
counts ``RSS - shared``: its unique set.
:func:`read_exact` reads the unique set itself (at a block's end).
Children are found through ``/proc/self/task/*/children`` (all threads, then their children,
recursively). Linux only; elsewhere there is no reading.
"""

from __future__ import annotations

import os
import threading
import time

from resmagic.probes import host
from resmagic.probes.reading import DeviceMemory, ProbeStatus, device_memory

__all__ = [
    "NAME",
    "SOURCE",
    "estimates",
    "listing",
    "pids",
    "read",
    "read_exact",
    "reading",
    "status",
    "unique",
]

NAME = "workers"
"""How workers rows name their device."""

SOURCE = "USS"
"""How workers rows name their source: the unique set size of the children, summed."""

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_lock = threading.Lock()
_shared: dict[int, tuple[int, float, int]] = {}  # pid -> (bytes it shares, when, its RSS then)
_BUDGET = 0.005  # the share of a core spent re-reading smaps_rollup, at most, all children
_due = 0.0  # when the next re-read may start
_GROWTH = 1.125  # RSS this much above its RSS at the last read (and _GROWN_BYTES): read again
_GROWN_BYTES = 4 << 20


def _after_fork() -> None:
    global _lock, _listed
    _lock = threading.Lock()  # the parent's sampler may have held it
    _tasks.clear()  # the parent's threads: this process lists its own
    _listed = (0.0, 0)
    _shared.clear()
    for fd in _own.values():  # the parent's threads' files
        os.close(fd)
    _own.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


_own: dict[str, int] = {}  # this process's threads -> their kept children file
_tasks: list[str] = []  # the thread ids last listed
_listed = (0.0, 0)  # when they were listed, and how many Python threads there were then
_RELIST_S = 1.0  # the thread list is read again at most this often, or when threads change


def _threads() -> list[str]:
    """This process's thread ids: listed again only after a second or a Python thread change.

    Listing ``/proc/self/task`` costs about 40 µs, twice per block; a thread native code
    started in the last second is found at the next listing (the sampler's next second).
    """
    global _tasks, _listed
    now, count = time.monotonic(), threading.active_count()
    if now - _listed[0] < _RELIST_S and count == _listed[1] and _tasks:
        return _tasks
    try:
        _tasks = os.listdir("/proc/self/task")
    except OSError:
        _tasks = []
    _listed = (now, count)
    return _tasks


_ANY_STATE = (
    os.WEXITED | os.WSTOPPED | os.WCONTINUED | os.WNOHANG | os.WNOWAIT
    if hasattr(os, "waitid")
    else 0
)


def _has_children() -> bool:
    """False only when this process has no child process at all, running or not reaped.

    One ``waitid`` that waits for nothing and reaps nothing (``WNOHANG | WNOWAIT``): ~0.5 µs
    against ~5 µs for the threads' ``children`` files, read twice per ``gpu_scope`` block
    and ten times a second by the sampler, where a process mostly has no child (issue 26).
    Any thread's children count: Linux lets a thread wait for its whole group's.
    """
    if not _ANY_STATE:
        return True
    try:
        os.waitid(os.P_ALL, 0, _ANY_STATE)
    except ChildProcessError:
        return False
    except OSError:
        return True  # cannot tell: read the files
    return True


def _own_children() -> list[int]:
    # Sampled ten times a second: the threads' files stay open (a pread is ~1 µs, an open
    # ~10 µs); a thread that ended is dropped.
    if not _has_children():
        return []
    found: list[int] = []
    with _lock:
        tasks = _threads()
        for gone in set(_own) - set(tasks):
            os.close(_own.pop(gone))
        for task in tasks:
            try:
                fd = _own.get(task)
                if fd is None:
                    path = f"/proc/self/task/{task}/children"
                    fd = _own[task] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                found += [int(p) for p in os.pread(fd, 65536, 0).split()]
            except (OSError, ValueError):
                continue  # the thread ended meanwhile
    return found


def _children_of(pid: str) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", "rb") as f:
                found += [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return found


def listing() -> tuple[list[int], list[int]]:
    """This process's own children, and every descendant (children first): one listing."""
    own = _own_children()
    out, todo = [], list(own)
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo += _children_of(str(pid))
    return own, out


def pids() -> list[int]:
    """Every descendant process of this one, children first."""
    return listing()[1]


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None  # gone


def _rollup(pid: int) -> tuple[int, int] | None:
    """(RSS, USS) of ``pid`` from one read of its ``smaps_rollup``; None when it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines()[1:]:
        name, _, rest = line.partition(b":")
        value = rest.split()
        if value and value[0].isdigit():
            fields[name] = int(value[0]) * 1024
    unique = fields.get(b"Private_Clean", 0) + fields.get(b"Private_Dirty", 0)
    return fields.get(b"Rss", 0), unique


def _measure(pid: int) -> float:
    """Read ``pid``'s shared part from its rollup; returns the seconds that took."""
    start = time.monotonic()
    rollup = _rollup(pid)
    now = time.monotonic()
    if rollup is not None:
        with _lock:
            _shared[pid] = (max(rollup[0] - rollup[1], 0), now, rollup[0])
    return now - start


def _refresh(alive: dict[int, int]) -> None:
    """Read new and grown children (``alive``: pid -> RSS); the stalest when the budget allows."""
    global _due
    read_now = set()
    for pid, rss in alive.items():
        known = _shared.get(pid)
        if known is None or (rss > known[2] * _GROWTH and rss - known[2] > _GROWN_BYTES):
            # New: its estimate needs it. Grown: what it took since may be its parent's file
            # pages, shared (fork copies no page of a file mapping); counted as its own, they
            # made a forked rank's sampled peak 12 MiB over what it held, on a loaded machine.
            _measure(pid)
            read_now.add(pid)
    measured = [pid for pid in alive if pid in _shared and pid not in read_now]
    if measured and time.monotonic() >= _due:
        # Pages stop being shared as either process writes them (copy on write): one child
        # at a time, so all of them together stay under _BUDGET of a core.
        stalest = min(measured, key=lambda pid: _shared[pid][1])
        _due = time.monotonic() + _measure(stalest) / _BUDGET


def estimates(alive: list[int]) -> dict[int, int]:
    """Each of ``alive``'s unique set, estimated from its RSS (sampled; see the module).

    ``alive`` is every descendant (:func:`listing`): the shared parts of the others are
    forgotten. A process gone meanwhile has no entry.
    """
    rss_of = {pid: rss for pid in alive if (rss := _rss(pid)) is not None}
    _refresh(rss_of)
    found: dict[int, int] = {}
    for pid, rss in rss_of.items():
        known = _shared.get(pid)
        if known is not None:
            found[pid] = max(rss - known[0], 0)
    with _lock:
        for gone in set(_shared) - set(alive):
            del _shared[gone]  # a later process may get its number
    return found


def unique(pid: int) -> int | None:
    """``pid``'s unique set from its ``smaps_rollup``: exact, ~11 ms per GiB; None: gone."""
    rollup = _rollup(pid)
    return rollup[1] if rollup is not None else None


def reading(used: int) -> DeviceMemory:
    """The ``workers`` row of ``used`` bytes."""
    return device_memory(NAME, used, host.total_bytes(), SOURCE)


def read() -> DeviceMemory:
    """The ``workers`` reading: the children's unique sets summed, estimated from RSS (sampled)."""
    return reading(sum(estimates(pids()).values()))


def read_exact() -> DeviceMemory:
    """The ``workers`` reading from each child's ``smaps_rollup``: exact, ~11 ms per GiB."""
    return reading(sum(u for pid in pids() if (u := unique(pid)) is not None))


def status() -> ProbeStatus:
    """Whether child processes can be found and measured here."""
    if not os.path.exists("/proc/self/task"):
        return ProbeStatus(NAME, False, "workers: no /proc here; child processes not measured")
    return ProbeStatus(
        NAME,
        True,
        "workers: child processes' unique memory (USS), sampled; launched ranks as rank rows",
    )
