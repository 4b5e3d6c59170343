"""Every rank's record of one scope, gathered to rank 0 through torch.distributed's store.

Prototype for issue 28 (``gpu_scope(ranks=True)``). Each rank writes its small record (status,
wall seconds, each device's before and peak bytes, error text) under a key of the default
process group's store; rank 0 waits for the other ranks' keys, at most ``timeout_s``, then
reads and deletes them. No collective is issued, which is the point (measured in
``benchmarks/ranks_cost.py``, ranks 2026-12-06):

- a rank that raised inside its scope still writes (its ``__exit__`` runs), with its error;
- a rank that is stuck, dead or never opened the scope is a :class:`Missing` row after the
  timeout, never a hang: rank 0 is the only rank that waits;
- the user's process group is never touched: a timed-out gloo collective (a resmagic group
  with its own timeout) or ``monitored_barrier`` breaks the group it ran on, and on nccl a
  timed-out collective aborts the process;
- nothing needs a device: no tensor, no CUDA stream synchronised, the same on gloo and nccl.

The keys carry a count per ``tag``, so every rank must open the same ranks scopes in the same
order, as with collectives. A record that arrives after rank 0 gave up on it stays in the
store (a few hundred bytes per timeout, each of which cost ``timeout_s`` of waiting).
Nothing here imports torch: with ``torch.distributed`` not imported, no group can be
initialised and :func:`gather` returns None.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from resmagic.errors import OptionError
from resmagic.report import Report, TimingReport

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DevicePeak",
    "Missing",
    "RankRecord",
    "RankTable",
    "gather",
    "record_of",
    "world",
]

DEFAULT_TIMEOUT_S = 60.0
"""How long rank 0 waits for the other ranks' records: longer than the skew between ranks
of one training step, far shorter than torch's own collective timeouts (10 min nccl, 30 gloo)."""

_FIRST_PAUSE_S = 0.0005  # rank 0 polls the store for the others' records, ever more slowly
_LAST_PAUSE_S = 0.01
_PREFIX = "resmagic/ranks"


@dataclass(frozen=True, slots=True)
class DevicePeak:
    """One device row of a rank's report: bytes in use when the scope opened and at its peak."""

    name: str
    source: str
    before_bytes: int
    peak_bytes: int
    exact: bool


@dataclass(frozen=True, slots=True)
class RankRecord:
    """What one rank measured over one scope.

    Attributes:
        rank: the rank in the default process group.
        status: ``"ok"``, ``"error"`` or ``"interrupted"``.
        wall_s: seconds the rank's scope was open.
        error: ``"Type: message"`` of what ended the rank's scope, if anything did.
        devices: the rank's device rows (``host``, ``cuda:N``, ``workers``...).
        pid: the rank's process id.
        host: the rank's host name.
    """

    rank: int
    status: str
    wall_s: float
    error: str | None = None
    devices: tuple[DevicePeak, ...] = ()
    pid: int = 0
    host: str = ""

    def peak(self, device: str) -> int | None:
        """Peak bytes of ``device``; ``"cuda"`` is the largest ``cuda:N`` row (allocator first)."""
        if device != "cuda":
            return next((d.peak_bytes for d in self.devices if d.name == device), None)
        gpus = [d for d in self.devices if d.name.startswith("cuda:")]
        exact = [d for d in gpus if d.exact] or gpus  # NVML counts every process on the GPU
        return max((d.peak_bytes for d in exact), default=None)


@dataclass(frozen=True, slots=True)
class Missing:
    """A rank whose record did not reach rank 0, and why, in words."""

    rank: int
    reason: str


Row = RankRecord | Missing


@dataclass(frozen=True, slots=True)
class RankTable:
    """The gathered records: on rank 0 one row per rank in rank order, elsewhere its own row.

    Attributes:
        rows: :class:`RankRecord` or :class:`Missing` per rank.
        waited_s: seconds rank 0 waited for the others (0 on other ranks).
        interrupted: Ctrl-C ended the wait; the caller re-raises it once its report is out.
        note: what went wrong with the store, in words; ``""`` when nothing did.
    """

    rows: tuple[Row, ...]
    waited_s: float = 0.0
    interrupted: bool = False
    note: str = ""

    def peak(self, device: str = "host") -> tuple[int, int] | None:
        """``(rank, bytes)`` of the largest peak of ``device`` over the ranks that reported."""
        best: tuple[int, int] | None = None
        for row in self.rows:
            value = row.peak(device) if isinstance(row, RankRecord) else None
            if value is not None and (best is None or value > best[1]):
                best = (row.rank, value)
        return best

    @property
    def missing(self) -> tuple[Missing, ...]:
        """The ranks with no record."""
        return tuple(row for row in self.rows if isinstance(row, Missing))


_hostname = socket.gethostname()


def record_of(report: Report, rank: int = -1) -> RankRecord:
    """This process's record of a scope's report (``gather`` fills in the rank)."""
    rows = getattr(report, "devices", ())
    devices = tuple(
        DevicePeak(d.name, d.source, d.before_bytes, d.peak_bytes, d.peak_exact) for d in rows
    )
    wall = report.wall_s if isinstance(report, TimingReport) else report.duration_s
    return RankRecord(rank, report.status, wall, report.error, devices, os.getpid(), _hostname)


def world() -> tuple[int, int] | None:
    """``(rank, world size)`` in the initialised default group; None without one (no import)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return int(dist.get_rank()), int(dist.get_world_size())


def gather(
    record: RankRecord, *, timeout_s: float = DEFAULT_TIMEOUT_S, tag: str = ""
) -> RankTable | None:
    """Every rank's record on rank 0, the ranks that did not report within ``timeout_s`` missing.

    Call it on every rank at the end of the same scope. Ranks other than 0 write their record
    and return at once (one message, no reply: ~20 µs); rank 0 waits for theirs. Never raises
    for the store's failures (they become the table's ``note``); Ctrl-C while waiting ends
    the wait and sets ``interrupted``.

    Args:
        record: this rank's record; its ``rank`` is set from the group.
        timeout_s: how long rank 0 waits for the others, in seconds.
        tag: a name for this kind of scope: ranks count their gathers per tag.

    Returns:
        The table, or None when no default process group is initialised (no gather).

    Raises:
        OptionError: ``timeout_s`` is not a positive number of seconds.
    """
    if not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        msg = f"timeout_s must be a positive number of seconds, not {timeout_s!r}"
        raise OptionError(msg)
    where = world()
    if where is None:
        return None
    rank, size = where
    own = replace(record, rank=rank)
    if size == 1:
        return RankTable((own,))
    try:
        store, base = _keys(tag)
        if rank == 0:
            return _collect(store, base, own, size, timeout_s)
        store.set(f"{base}/{rank}", _encode(own))  # sent without waiting for a reply
    except Exception as exc:  # no store, or it is gone: the report goes out without the others
        return RankTable((own,), note=f"ranks: not gathered ({_describe(exc)})")
    return RankTable((own,))


# -- the store -------------------------------------------------------------------------------

_lock = threading.Lock()
_channel: tuple[Any, Any, dict[str, int]] | None = None  # (group, its store, gathers per tag)


def _forget() -> None:
    global _channel, _lock
    _channel = None  # a forked child counts its own gathers, in its own group
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget)


def _keys(tag: str) -> tuple[Any, str]:
    """The store to use for the default group, and this gather's key prefix."""
    global _channel
    dist = sys.modules["torch.distributed"]
    group = dist.distributed_c10d._get_default_group()
    with _lock:
        if _channel is None or _channel[0] is not group:
            # The group's own store: every call here is one short round trip (no blocking
            # wait holds the client's lock, which torch's threads share) and sets no timeout.
            _channel = (group, dist.distributed_c10d._get_default_store(), {})
        counts = _channel[2]
        counts[tag] = n = counts.get(tag, 0) + 1
        return _channel[1], f"{_PREFIX}/{tag}/{n}"


def _collect(store: Any, base: str, own: RankRecord, size: int, timeout_s: float) -> RankTable:
    keys = {r: f"{base}/{r}" for r in range(1, size)}
    start = time.monotonic()
    interrupted, note, values = False, "", {}
    try:
        try:
            values = _fetch(store, keys, start + timeout_s)
        except KeyboardInterrupt:
            interrupted = True
            values = _present(store, keys)
        for r in values:  # read: leave nothing behind in the store
            store.delete_key(keys[r])
    except Exception as exc:
        note = f"ranks: store failed ({_describe(exc)})"
    waited = time.monotonic() - start
    why = note or ("not waited for (interrupted)" if interrupted else _late(timeout_s))
    rows = [_decode(r, values[r]) if r in values else Missing(r, why) for r in keys]
    return RankTable((own, *rows), waited, interrupted, note)


def _fetch(store: Any, keys: dict[int, str], deadline: float) -> dict[int, bytes]:
    """Every rank's record once all are in the store; at ``deadline``, those that are."""
    names, pause = list(keys.values()), _FIRST_PAUSE_S
    # Polled, never a blocking wait: a store wait that times out logs two warnings from
    # c10d's socket each time, and Ctrl-C lands only when it returns. A check is one round
    # trip; the pauses double up to _LAST_PAUSE_S, the most a record waits to be seen.
    while not store.check(names):
        left = deadline - time.monotonic()
        if left <= 0:
            return _present(store, keys)
        time.sleep(min(pause, left))
        pause = min(pause * 2, _LAST_PAUSE_S)
    return dict(zip(keys, store.multi_get(names), strict=True))


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


def _encode(record: RankRecord) -> bytes:
    devices = [[d.name, d.source, d.before_bytes, d.peak_bytes, d.exact] for d in record.devices]
    fields = [record.status, record.wall_s, record.error, devices, record.pid, record.host]
    return json.dumps(fields, separators=(",", ":")).encode()


def _decode(rank: int, raw: bytes) -> Row:
    try:
        status, wall, error, devices, pid, host = json.loads(raw)
        rows = tuple(DevicePeak(n, s, int(b), int(p), bool(e)) for n, s, b, p, e in devices)
        return RankRecord(rank, str(status), float(wall), error, rows, int(pid), str(host))
    except (ValueError, TypeError) as exc:  # another writer's key, or a newer resmagic's
        return Missing(rank, f"unreadable record ({_describe(exc)})")
