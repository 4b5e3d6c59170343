"""Which of this process's child processes are ranks a cell launched, and each one's memory.

Prototype for issue 28 (item 2: ``%%gpu_scope`` around ``mp.spawn``/``notebook_launcher``).
How a launcher starts its ranks decides what the kernel can see of them (ranks 2026-12-06):

- **torchrun** (``!torchrun`` in a cell, ``accelerate launch``, any launcher that starts its
  ranks with ``subprocess`` and torch's environment contract): each rank's ``RANK`` is in
  ``/proc/PID/environ``. Exact.
- **fork** (accelerate's ``notebook_launcher`` through ``elastic_launch(start_method="fork")``,
  its ``debug_launcher``, ``torch.multiprocessing.start_processes(start_method="fork")``):
  the rank's environment is set inside the child after the fork, which ``/proc/PID/environ``
  never shows (it is the block the process was exec'd with: the kernel's). The ranks are the
  direct children that are forks of this process (same command line); torch starts local
  rank *i* as the *i*-th, so start order is the rank. Forked DataLoader workers of the
  kernel look the same: they count as ranks only while ``WORLD_SIZE`` is in this process's
  environment, which accelerate's launchers set for the launch.
- **spawn** (``torch.multiprocessing.spawn``): children that run ``multiprocessing.spawn``'s
  ``spawn_main``, numbered by start order; the resource tracker is not one.

Each rank's memory is its unique set (private pages, ``smaps_rollup``), as for ``workers``:
forked ranks share the kernel's pages, which their RSS would count again. Linux only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from resmagic.probes import host, workers
from resmagic.probes.reading import DeviceMemory

__all__ = ["LaunchedRank", "find", "read"]

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


def find() -> list[LaunchedRank]:
    """The ranks among this process's descendants, in rank order; [] when none are seen."""
    by_env = _by_environment(workers.pids())
    if by_env:
        return by_env
    forks, spawned = _direct_children()
    chosen = spawned or (forks if "WORLD_SIZE" in os.environ else [])
    ordered = sorted(chosen, key=lambda pid: (_start_ticks(pid), pid))
    return [LaunchedRank(pid, i, START_ORDER) for i, pid in enumerate(ordered)]


def read(found: list[LaunchedRank]) -> list[DeviceMemory]:
    """A ``rank N`` row per rank: its unique memory now (exact; ~11 ms per GiB of RSS)."""
    rows = []
    for rank in found:
        rollup = workers._rollup(rank.pid)
        if rollup is not None:  # gone: it finished meanwhile
            rows.append(DeviceMemory(f"rank {rank.rank}", rollup[1], host.total_bytes(), "USS"))
    return rows


def _by_environment(pids: list[int]) -> list[LaunchedRank]:
    if "RANK" in os.environ:  # we are a rank ourselves: our children inherit our RANK
        return []
    found = []
    for pid in pids:
        rank = _environ(pid).get(b"RANK")
        if rank is not None and rank.isdigit():
            found.append(LaunchedRank(pid, int(rank), ENVIRONMENT))
    return sorted(found, key=lambda r: r.rank)


def _direct_children() -> tuple[list[int], list[int]]:
    """This process's forks (same command line) and its ``spawn_main`` children."""
    own = _cmdline(os.getpid())
    forks, spawned = [], []
    for pid in workers._own_children():
        cmd = _cmdline(pid)
        if any(marker in cmd for marker in _NOT_RANKS):
            continue
        if b"spawn_main" in cmd and b"--multiprocessing-fork" in cmd:
            spawned.append(pid)
        elif cmd == own:
            forks.append(pid)
    return forks, spawned


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


def _start_ticks(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0
