"""Every rank's record of one scope, gathered to rank 0 through torch.distributed's store.

``gpu_scope(ranks=True)`` and ``timed(ranks=True)`` call :func:`gather` as they close. Each
rank writes its small record (status, wall seconds, each device's before, peak and after
bytes, error text) under a key of the default process group's store; rank 0 waits for the
other ranks' keys, at most ``timeout_s``, then reads and deletes them. No collective is
issued, which is the point (measured in ``benchmarks/ranks_cost.py`` and
``benchmarks/ranks_failures.py``):

- a rank that raised inside its scope still writes (its ``__exit__`` runs), with its error;
- a rank that is stuck, dead or never opened the scope is a ``missing`` row after the
  timeout, never a hang: rank 0 is the only rank that waits;
- the user's process group is never touched: a timed-out gloo collective (a resmagic group
  with its own timeout) or ``monitored_barrier`` breaks the group it ran on, and on nccl a
  timed-out collective aborts the process;
- nothing needs a device: no tensor, no CUDA stream synchronised, the same on gloo and nccl;
- only a process that joined the group gathers: a child a rank forked (a DataLoader worker)
  has the group and the store's socket copied, but is no rank, and gathers nothing;
- nothing of the group is kept between gathers: ``destroy_process_group()`` frees its store
  and sockets (rank 0's port too), so a group made again on the same port starts clean.

The keys carry a count per ``tag``, so every rank must open the same ranks scopes in the same
order, as with collectives. A record that arrives after rank 0 gave up on it stays in the
store (a few hundred bytes per timeout, each of which cost ``timeout_s`` of waiting). The
keys also carry the group's generation, the number each rank gives it among its groups on
this store (:func:`_generation`): a store can outlive its group (torchrun's agent store
does), and a late record of a destroyed group must not be read as the next group's.
Nothing here imports torch: with ``torch.distributed`` not imported, no group can be
initialised and :func:`gather` returns None.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from resmagic.errors import OptionError
from resmagic.ranktable import MISSING, RankDevice, RankRow, RankTable
from resmagic.report import GpuReport, Report, TimingReport

__all__ = ["DEFAULT_TIMEOUT_S", "check_timeout", "gather", "record_of", "world"]

DEFAULT_TIMEOUT_S = 60.0
"""How long rank 0 waits for the other ranks' records: longer than the skew between ranks
of one training step, far shorter than torch's own collective timeouts (10 min nccl, 30 gloo)."""

_FIRST_PAUSE_S = 0.0005  # rank 0 polls the store for the others' records, ever more slowly
_LAST_PAUSE_S = 0.01
_PREFIX = "resmagic/ranks"

Stop = Callable[[], bool]
"""Asked between two polls of rank 0's wait: True ends the wait (a held-back Ctrl-C)."""


def check_timeout(timeout_s: object) -> float:
    """``timeout_s`` as seconds; :class:`OptionError` unless it is a positive finite number."""
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not math.isfinite(timeout_s)
        or timeout_s <= 0
    ):
        msg = f"ranks timeout must be a positive number of seconds, e.g. 60, not {timeout_s!r}"
        raise OptionError(msg)
    return float(timeout_s)


_hostname = socket.gethostname()


def record_of(report: Report, rank: int = -1) -> RankRow:
    """This process's row of a scope's report (:func:`gather` fills in the rank)."""
    devices: tuple[RankDevice, ...] = ()
    if isinstance(report, GpuReport):
        devices = tuple(
            RankDevice(
                d.name,
                d.source,
                d.before_bytes,
                d.peak_bytes,
                d.after_bytes,
                d.total_bytes,
                d.peak_exact,
            )
            for d in report.devices
        )
    wall = report.wall_s if isinstance(report, TimingReport) else report.duration_s
    return RankRow(rank, report.status, wall, report.error, devices, os.getpid(), _hostname)


def world() -> tuple[int, int] | None:
    """``(rank, world size)`` in the default group this process joined; None without one.

    A forked child of a rank (a DataLoader worker) has its parent's group but is no rank of
    it: None there too, as with no group. Never imports torch.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    if _inherited is not None and _inherited() is dist.distributed_c10d._get_default_group():
        # Gathering here would speak as the parent's rank through the parent's store socket,
        # copied by fork: the two processes' messages interleave and the parent's store
        # connection breaks (DistStoreError), or a rank waits out torch's store timeout.
        return None
    return int(dist.get_rank()), int(dist.get_world_size())


def gather(
    row: RankRow, *, timeout_s: float = DEFAULT_TIMEOUT_S, tag: str = "", stop: Stop | None = None
) -> RankTable | None:
    """Every rank's row on rank 0, the ranks that did not report within ``timeout_s`` missing.

    Call it on every rank at the end of the same scope. Ranks other than 0 write their row
    and return at once (one message, no reply: ~16 µs); rank 0 waits for theirs. Never
    raises for the store's failures (they become the table's ``note``); Ctrl-C while waiting,
    or ``stop()`` turning True, ends the wait and sets ``interrupted``.

    Args:
        row: this rank's row; its ``rank`` is set from the group.
        timeout_s: how long rank 0 waits for the others, in seconds.
        tag: a name for this kind of scope: ranks count their gathers per tag.
        stop: asked between two polls; True ends rank 0's wait.

    Returns:
        The table, or None when no default process group is initialised (no gather).

    Raises:
        OptionError: ``timeout_s`` is not a positive number of seconds.
    """
    timeout_s = check_timeout(timeout_s)
    where = world()
    if where is None:
        return None
    rank, size = where
    own = replace(row, rank=rank)
    if size == 1:
        return RankTable(rank, size, (own,))
    try:
        store, base = _keys(tag, rank)
        if rank == 0:
            return _collect(store, base, own, size, timeout_s, stop)
        store.set(f"{base}/{rank}", _encode(own))  # sent without waiting for a reply
    except Exception as exc:  # no store, or it is gone: the report goes out without the others
        return RankTable(rank, size, (own,), note=f"ranks: not gathered ({_describe(exc)})")
    return RankTable(rank, size, (own,))


# -- the store -------------------------------------------------------------------------------

_lock = threading.Lock()
# The default group, its generation and its gathers per tag. The group is held weakly and its
# store is looked up per gather: a kept reference outlived destroy_process_group() and kept
# the group's sockets open, rank 0's store server listening on MASTER_PORT included, so a
# group made again there failed.
_channel: tuple[weakref.ref[Any], int, dict[str, int]] | None = None
_inherited: weakref.ref[Any] | None = None  # the default group this process was forked with


def _forked() -> None:
    """In a forked child: the group it was forked with is its parent's; no gather counted."""
    global _channel, _lock, _inherited
    _channel = None
    _lock = threading.Lock()
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        _inherited = weakref.ref(dist.distributed_c10d._get_default_group())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _keys(tag: str, rank: int) -> tuple[Any, str]:
    """The store to use for the default group, and this gather's key prefix."""
    global _channel
    c10d = sys.modules["torch.distributed"].distributed_c10d
    group = c10d._get_default_group()
    # The group's own store: every call here is one short round trip (no blocking wait holds
    # the client's lock, which torch's threads share) and sets no timeout.
    store = c10d._get_default_store()
    with _lock:
        if _channel is None or _channel[0]() is not group:
            _channel = (weakref.ref(group), _generation(store, rank), {})  # counts from 1
        _, generation, counts = _channel
        counts[tag] = n = counts.get(tag, 0) + 1
    return store, f"{_PREFIX}/{generation}/{tag}/{n}"


def _generation(store: Any, rank: int) -> int:
    """Which of this rank's groups on ``store`` the default group is: 1, 2, ... (one ``add``).

    Every rank of a group counts the same, with no message between them (none waits on
    another), as long as each rank gathered at least once in each earlier group on this store
    in which any rank did; the rows of a rank that counts differently are missing.
    """
    return int(store.add(f"{_PREFIX}/groups/{rank}", 1))


def _collect(
    store: Any, base: str, own: RankRow, size: int, timeout_s: float, stop: Stop | None
) -> RankTable:
    keys = {r: f"{base}/{r}" for r in range(1, size)}
    start = time.monotonic()
    interrupted, note = False, ""
    values: dict[int, bytes] = {}
    try:
        try:
            values, interrupted = _fetch(store, keys, start + timeout_s, stop)
        except KeyboardInterrupt:  # not held back (another thread's handler, a forced one)
            interrupted = True
            values = _present(store, keys)
        for r in values:  # read: leave nothing behind in the store
            store.delete_key(keys[r])
    except Exception as exc:
        note = f"ranks: store failed ({_describe(exc)})"
    waited = time.monotonic() - start
    why = note or ("not waited for (interrupted)" if interrupted else _late(timeout_s))
    rows = [_decode(r, values[r]) if r in values else RankRow(r, MISSING, None, why) for r in keys]
    return RankTable(0, size, (own, *rows), waited, interrupted, note)


def _fetch(
    store: Any, keys: dict[int, str], deadline: float, stop: Stop | None
) -> tuple[dict[int, bytes], bool]:
    """Every rank's record once all are in the store; at ``deadline`` or a stop, those that are.

    Returns the records and whether ``stop`` ended the wait.
    """
    names, pause = list(keys.values()), _FIRST_PAUSE_S
    # Polled, never a blocking wait: a store wait that times out logs two warnings from
    # c10d's socket each time, and Ctrl-C lands only when it returns. A check is one round
    # trip; the pauses double up to _LAST_PAUSE_S, the most a record waits to be seen.
    while not store.check(names):
        stopped = stop is not None and stop()
        left = deadline - time.monotonic()
        if left <= 0 or stopped:
            return _present(store, keys), stopped
        time.sleep(min(pause, left))
        pause = min(pause * 2, _LAST_PAUSE_S)
    return dict(zip(keys, store.multi_get(names), strict=True)), False


def _present(store: Any, keys: dict[int, str]) -> dict[int, bytes]:
    """The records that are in the store now (get() would wait for a missing one)."""
    return {r: store.get(k) for r, k in keys.items() if store.check([k])}


def _late(timeout_s: float) -> str:
    return (
        f"no record within {timeout_s:g} s: the rank is late, stuck or dead, or did not open"
        " this scope"
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


# -- the record on the wire (JSON: small, readable in the store, no pickle) -------------------


def _encode(row: RankRow) -> bytes:
    devices = [
        [d.name, d.source, d.before_bytes, d.peak_bytes, d.after_bytes, d.total_bytes, d.peak_exact]
        for d in row.devices
    ]
    fields = [row.status, row.wall_s, row.error, devices, row.pid, row.host]
    return json.dumps(fields, separators=(",", ":")).encode()


def _decode(rank: int, raw: bytes) -> RankRow:
    try:
        status, wall, error, devices, pid, host = json.loads(raw)
        if status not in ("ok", "error", "interrupted"):
            msg = f"status {status!r}"
            raise ValueError(msg)
        rows = tuple(
            RankDevice(str(n), str(s), int(b), int(p), int(a), _int_or_none(t), bool(e))
            for n, s, b, p, a, t, e in devices
        )
        text = None if error is None else str(error)
        return RankRow(rank, status, float(wall), text, rows, _int_or_none(pid), str(host))
    except (ValueError, TypeError) as exc:  # another writer's key, or a newer resmagic's
        return RankRow(rank, MISSING, None, f"unreadable record ({_describe(exc)})")


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
