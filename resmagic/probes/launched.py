"""The ranks a cell launched, as rows of their own: ``rank 0``, ``rank 1`` (issue 28, item 2).

``%%gpu_scope`` around ``mp.spawn(...)``, ``notebook_launcher(...)`` or ``!torchrun ...``:
each rank process gets a host row (its unique memory, as ``workers`` counts a child's) and,
with NVML, a row per GPU it uses (``rank 1 cuda:0``, NVML's per-process figure); the
``workers`` row keeps the other children (a launcher's agent, a shell, DataLoader workers),
so nothing is counted twice. Both come from one listing of the children
(:func:`resmagic.probes.workers.listing`: ~8 µs in a kernel of nine threads), which is why
this is not a probe of its own in the table but the ``workers`` probe's rows.

How a launcher starts its ranks decides what the kernel can see of them (ranks 2026-12-06):

- **torchrun** (``!torchrun`` in a cell, ``accelerate launch``, any launcher that starts its
  ranks with ``subprocess`` and torch's environment contract): each rank's ``RANK`` is in
  ``/proc/PID/environ``. Exact, also for ranks that are grandchildren. What a rank starts
  (DataLoader workers, a subprocess) inherits its ``RANK``: the rank is the topmost process
  with it, the ones below stay in ``workers``.
- **fork** (accelerate's ``notebook_launcher`` through ``elastic_launch(start_method="fork")``,
  its ``debug_launcher``, ``torch.multiprocessing.start_processes(start_method="fork")``):
  the rank's environment is set inside the child after the fork, which ``/proc/PID/environ``
  never shows (it is the block the process was exec'd with: the kernel's). The ranks are the
  direct children that are forks of this process (same command line); torch starts local
  rank *i* as the *i*-th, so start order is the rank. Forked DataLoader workers of the
  kernel look the same: they count as ranks only while ``WORLD_SIZE`` is in this process's
  environment, which accelerate's launchers set for the launch.
- **spawn** (``torch.multiprocessing.spawn``): children that run ``multiprocessing.spawn``'s
  ``spawn_main``, numbered by start order; the resource tracker is not one. A pool or
  DataLoader of the kernel's own with the spawn context looks the same (documented).

A rank numbered by start order keeps its number while it lives: one that ends first does
not renumber the others. Linux only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from resmagic.probes import host, nvml, workers
from resmagic.probes.reading import DeviceMemory
from resmagic.ranktable import is_rank_row, rank_row

__all__ = [
    "ENVIRONMENT",
    "START_ORDER",
    "LaunchedRank",
    "find",
    "is_rank_row",
    "rank_row",
    "read",
]

ENVIRONMENT = "environment"
"""How a rank was named: its ``RANK`` variable (exact)."""
START_ORDER = "start order"
"""How a rank was named: the order its launcher started it in (fork and spawn launchers)."""

_NOT_RANKS = (b"multiprocessing.resource_tracker", b"multiprocessing.forkserver")


@dataclass(frozen=True, slots=True)
class LaunchedRank:
    """A child process taken for a rank: its pid, its rank, and how the rank was found."""

    pid: int
    rank: int
    named_by: str


def find(own: list[int], alive: list[int]) -> list[LaunchedRank]:
    """The ranks among this process's children ``own`` and descendants ``alive``, by rank."""
    if not alive:
        return []
    by_env = _by_environment(alive)
    if by_env:
        return by_env
    forks, spawned = _direct_children(own)
    chosen = spawned or (forks if "WORLD_SIZE" in os.environ else [])
    return _numbered(chosen)


def read(wants: Callable[[int], bool], *, exact: bool = False) -> list[DeviceMemory]:
    """The ``workers`` row, less the ranks, then each rank's rows.

    Sampled: each process's unique set estimated from its RSS; ``exact``: read from its
    ``smaps_rollup`` (~11 ms per GiB: a block's end). With NVML, a ``rank N cuda:M`` row for
    each wanted GPU a rank holds memory on. No children: the ``workers`` row of 0 bytes.
    """
    own, alive = workers.listing()
    if not alive:
        return [workers.reading(0)]
    found = find(own, alive)
    if exact:
        sizes = {pid: u for pid in alive if (u := workers.unique(pid)) is not None}
    else:
        sizes = workers.estimates(alive)
    ranks = {rank.pid for rank in found}
    rows = [workers.reading(sum(v for pid, v in sizes.items() if pid not in ranks))]
    total = host.total_bytes()
    for rank in found:
        if rank.pid in sizes:  # else it ended meanwhile
            rows.append(DeviceMemory(rank_row(rank.rank), sizes[rank.pid], total, workers.SOURCE))
    if found:
        rows += _gpu_rows(found, wants)
    return rows


def _gpu_rows(found: list[LaunchedRank], wants: Callable[[int], bool]) -> list[DeviceMemory]:
    """Each rank's memory on each wanted GPU, from NVML's per-process list (none without NVML)."""
    rows = []
    for device in nvml.visible():
        if not wants(device.cuda_index):
            continue
        used, total = nvml.process_memory(device)
        for rank in found:
            if rank.pid in used:
                name = rank_row(rank.rank, f"cuda:{device.cuda_index}")
                rows.append(DeviceMemory(name, used[rank.pid], total, nvml.SOURCE))
    return rows


def _by_environment(pids: list[int]) -> list[LaunchedRank]:
    """The topmost process of each ``RANK`` among ``pids``: the rank, not what it started."""
    if "RANK" in os.environ:  # we are a rank ourselves: our children inherit our RANK
        return []
    ranks = {}
    for pid in pids:
        rank = _environ(pid).get(b"RANK")
        if rank is not None and rank.isdigit():
            ranks[pid] = rank
    among = set(pids)
    parents: dict[int, int] = {}  # each process's parent read once, however many ranks ask
    found = [
        LaunchedRank(pid, int(rank), ENVIRONMENT)
        for pid, rank in ranks.items()
        # A process a rank starts (a DataLoader worker, a compile worker) inherits its RANK:
        # taken for a rank it was a second row of that rank, its memory shown as the rank's.
        # It stays in workers, so each process is counted once, as the README promises.
        if not any(ranks.get(up) == rank for up in _ancestors(pid, among, parents))
    ]
    return sorted(found, key=lambda r: r.rank)


def _ancestors(pid: int, among: set[int], parents: dict[int, int]) -> list[int]:
    """``pid``'s parent, its parent's parent, ... while they are in ``among``.

    ``parents`` keeps what was read (``/proc/PID/stat``) for the next call.
    """
    out = []
    parent = _parent_of(pid, parents)
    while parent in among and parent not in out:
        out.append(parent)
        parent = _parent_of(parent, parents)
    return out


def _parent_of(pid: int, parents: dict[int, int]) -> int:
    if pid not in parents:
        parents[pid] = _parent(pid)
    return parents[pid]


def _direct_children(own: list[int]) -> tuple[list[int], list[int]]:
    """This process's forks (same command line) and its ``spawn_main`` children."""
    mine = _cmdline(os.getpid())
    forks, spawned = [], []
    for pid in own:
        cmd = _cmdline(pid)
        if any(marker in cmd for marker in _NOT_RANKS):
            continue
        if b"spawn_main" in cmd and b"--multiprocessing-fork" in cmd:
            spawned.append(pid)
        elif cmd == mine:
            forks.append(pid)
    return forks, spawned


_lock = threading.Lock()
_numbers: dict[int, tuple[int, int]] = {}  # pid -> (its start ticks, the rank it was given)


def _numbered(pids: list[int]) -> list[LaunchedRank]:
    """``pids`` as ranks by start order; a pid keeps its number while it lives.

    New ones are numbered after those still alive (a launch's ranks start together; the
    first to end must not renumber the others), from 0 once none is.
    """
    ticks = {pid: _start_ticks(pid) for pid in pids}
    with _lock:
        for pid in list(_numbers):
            if ticks.get(pid) != _numbers[pid][0]:  # gone, or its number reused
                del _numbers[pid]
        following = max((rank for _, rank in _numbers.values()), default=-1) + 1
        for pid in sorted((p for p in pids if p not in _numbers), key=lambda p: (ticks[p], p)):
            _numbers[pid] = (ticks[pid], following)
            following += 1
        chosen = sorted((_numbers[pid][1], pid) for pid in pids)
    return [LaunchedRank(pid, rank, START_ORDER) for rank, pid in chosen]


def _after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # the parent's sampler may have held it
    _numbers.clear()  # the parent's children are not this process's


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _environ(pid: int) -> dict[bytes, bytes]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    return dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def _parent(pid: int) -> int:
    """``pid``'s parent (``/proc/PID/stat`` field 4); 0 when it is gone."""
    return _stat_field(pid, 4)


def _start_ticks(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    return _stat_field(pid, 22)


def _stat_field(pid: int, field: int) -> int:
    """Field ``field`` (numbered from 1, as proc(5) does) of ``/proc/PID/stat``; 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # Fields 1 and 2 are the pid and "(command)", which may hold spaces and ")".
            return int(f.read().rsplit(b")", 1)[1].split()[field - 3])
    except (OSError, IndexError, ValueError):
        return 0
