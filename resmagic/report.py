"""The records scopes emit: one frozen report type per scope, units in the field names.

A scope publishes its report when it closes, also when its body raised
(:mod:`resmagic.bus` keeps them and hands them on).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from resmagic.ranktable import RankTable
from resmagic.redact import redact
from resmagic.units import format_bytes, format_seconds

__all__ = [
    "DeviceReport",
    "GpuReport",
    "Holder",
    "LogReport",
    "Report",
    "Status",
    "TimingReport",
    "TransactionReport",
    "describe_error",
    "fields_of",
    "plain",
    "status_of",
]

Status = Literal["ok", "error", "interrupted"]


def _is_cancelled(exc: BaseException) -> bool:
    # asyncio costs ~16 ms to import; only code that already imported it can be cancelled.
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and isinstance(exc, asyncio.CancelledError)


def status_of(exc: BaseException | None) -> Status:
    """``"ok"`` for no exception, ``"interrupted"`` for Ctrl-C or cancellation, else ``"error"``."""
    if exc is None:
        return "ok"
    if isinstance(exc, KeyboardInterrupt) or _is_cancelled(exc):
        return "interrupted"
    return "error"


def describe_error(exc: BaseException | None) -> str | None:
    """``"ZeroDivisionError: division by zero"``, shortened to one line of at most 200 chars.

    A longer line keeps its start and its end, where a wrapped error names its cause
    (urllib3's "Max retries exceeded with url: ... (Caused by ResponseError('too many 500
    error responses'))"). URI passwords and secret query values show as ``***``
    (:func:`resmagic.redact.redact`): this text goes to the run store, the sinks (MLflow's
    ``cell.N.error`` tag) and logs.
    """
    if exc is None:
        return None
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {redact(text[0])}" if text else type(exc).__name__
    return line if len(line) <= 200 else f"{line[:140]} … {line[-57:]}"


@dataclass(frozen=True, slots=True)
class Holder:
    """One storage and the name it was found under (a report's ``holders``; ``resmagic.who()``).

    Attributes:
        name: what a user can type or recognise, e.g. ``model.fc.weight.grad``, ``Out[7]``.
        kind: parameter, buffer, gradient, optimizer state, activation, tensor, numpy array,
            bytes, output cache, traceback frame.
        device: ``"host"`` or ``"cuda:N"``.
        nbytes: the storage's size, counted once however many names reach it.
        shared_with: the other names that reach the same storage (views, tied weights).
    """

    name: str
    kind: str
    device: str
    nbytes: int
    shared_with: tuple[str, ...] = ()


_ATOMS = frozenset({str, int, float, bool, type(None)})
_NAMES: dict[tuple[type, frozenset[str]], tuple[str, ...]] = {}
_NO_NAMES: frozenset[str] = frozenset()


def fields_of(obj: Any, skip: frozenset[str] = _NO_NAMES) -> dict[str, Any]:
    """``dataclasses.asdict(obj)`` less the fields named in ``skip``: the same dict, faster.

    Issue 26 (C1): the run store's writer thread turns every report into a row, and
    ``asdict``'s generic recursion (a ``deepcopy`` per leaf) was half of that: 16 of 35 µs
    per ``TimingReport``, GIL time a cell loop waits for. Atoms (most fields) are taken as
    they are, without a call each; the store's row asks for the fields without a column.
    """
    key = (type(obj), skip)
    names = _NAMES.get(key)
    if names is None:
        names = _NAMES[key] = tuple(f.name for f in dataclasses.fields(obj) if f.name not in skip)
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name)
        out[name] = value if type(value) in _ATOMS else plain(value)
    return out


def plain(value: Any) -> Any:
    """One field's value as :meth:`Report.to_dict` has it (``dataclasses.asdict``'s rules)."""
    kind = type(value)
    if kind in _ATOMS:
        return value  # what deepcopy gives back for these
    if kind is tuple or kind is list:
        return kind(plain(v) for v in value)
    if kind is dict:
        return {plain(k): plain(v) for k, v in value.items()}
    if hasattr(kind, "__dataclass_fields__"):
        return fields_of(value)
    return dataclasses.asdict(_Box(value))["value"]  # anything else: asdict's own rules


@dataclass(slots=True)
class _Box:
    value: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class Report:
    """What every scope reports.

    Attributes:
        status: ``"ok"``, ``"error"`` or ``"interrupted"``.
        duration_s: wall seconds the scope was open.
        started_at: when it opened, as seconds since the epoch.
        cell: the IPython execution count of the cell it ran in, else None.
        error: ``"Type: message"`` of the exception that ended it, if any.
    """

    scope: ClassVar[str] = "scope"

    status: Status
    duration_s: float
    started_at: float
    cell: int | None = None
    error: str | None = None

    def summary(self) -> str:
        """One line for logs and terminals, e.g. ``"timed train  wall 1.23 s  cpu 1.10 s"``."""
        return f"{self.scope}  {self._details()}{self._status_suffix()}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, with ``"scope"`` first."""
        return {"scope": self.scope, **fields_of(self)}

    def _details(self) -> str:
        return format_seconds(self.duration_s)

    def _status_suffix(self) -> str:
        if self.status == "ok":
            return ""
        return f"  [{self.status}: {self.error}]" if self.error else f"  [{self.status}]"


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceReport:
    """Memory of one device over one scope, in bytes, from one source.

    Attributes:
        name: ``"host"`` (this process), ``"workers"`` (its child processes),
            ``"container"`` (its memory cgroup) or ``"cuda:N"``.
        source: ``"torch allocator"``, ``"NVML"``, ``"RSS"``, ``"USS"`` (workers: their
            unique memory) or ``"cgroup"`` (the cgroup's working set; its exact peak is the
            cgroup's counter, shared with every process in it).
        before_bytes: in use when the scope opened.
        peak_bytes: the most in use while it was open.
        after_bytes: in use when it closed (after cache cleanup).
        total_bytes: the device's capacity (host: RAM or the container limit), if known.
        peak_exact: True when the peak is a hardware/allocator counter, False when sampled.
        reserved_bytes: torch allocator rows: what its cache held when the scope closed
            (tensors and free blocks kept for reuse); None for other sources.
    """

    name: str
    source: str
    before_bytes: int
    peak_bytes: int
    after_bytes: int
    total_bytes: int | None
    peak_exact: bool
    reserved_bytes: int | None = None

    @property
    def delta_bytes(self) -> int:
        """``after_bytes - before_bytes``: what the scope left allocated."""
        return self.after_bytes - self.before_bytes

    def summary(self) -> str:
        """``"host 1.21 GiB → 1.23 GiB (peak 1.62 GiB, exact)"``; allocator rows add the cache."""
        kind = "exact" if self.peak_exact else "sampled"
        if self.source == "cgroup" and self.peak_exact:
            kind += ", shared"  # the cgroup's counter: every process in it, every reader
        if self.reserved_bytes is not None:
            kind += f"; cache {format_bytes(self.reserved_bytes)}"
        label = self.name if self.source != "NVML" else f"{self.name} (NVML)"
        return (
            f"{label} {format_bytes(self.before_bytes)} → {format_bytes(self.after_bytes)}"
            f" (peak {format_bytes(self.peak_bytes)}, {kind})"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class GpuReport(Report):
    """``gpu_scope``'s report: per-device memory before, at peak and after.

    Attributes:
        devices: one row per device and source; ``host`` is always there.
        notes: why a device has no row (e.g. ``"torch allocator: torch not imported"``).
        reclaimed: True when the scope cleared an exception's frames to free memory.
        holders: the largest variables holding memory, named when the block left more than
            ``settings.held_mib`` held or ran out of memory (``gpu_scope(held_by=...)``).
        holders_when: ``"after"`` (what the block left held) or ``"error"`` (what held the
            memory when it ran out, before a reclaim freed it); ``""`` without holders.
        ranks: ``gpu_scope(ranks=True)`` in a process group: every rank's row on rank 0, its
            own on the others (:class:`~resmagic.ranktable.RankTable`); else None.
    """

    scope: ClassVar[str] = "gpu_scope"

    devices: tuple[DeviceReport, ...] = ()
    notes: tuple[str, ...] = ()
    reclaimed: bool = False
    holders: tuple[Holder, ...] = ()
    holders_when: Literal["", "after", "error"] = ""
    ranks: RankTable | None = None

    def device(self, name: str, source: str | None = None) -> DeviceReport:
        """The row for ``name`` (and ``source``, when two sources report one device)."""
        for row in self.devices:
            if row.name == name and (source is None or row.source == source):
                return row
        msg = f"no device {name!r} in this report; it has {[d.name for d in self.devices]}"
        raise KeyError(msg)

    def _details(self) -> str:
        parts = [d.summary() for d in self.devices]
        if self.reclaimed:
            parts.append("reclaimed")
        parts.append(format_seconds(self.duration_s))
        if self.ranks is not None:
            parts.append(self.ranks.summary())
        return "  ".join(parts)


@dataclass(frozen=True, kw_only=True, slots=True)
class TimingReport(Report):
    """``timed``'s report: wall and CPU seconds, CUDA-synchronised when CUDA was in use.

    ``ranks``: ``timed(ranks=True)`` in a process group: every rank's row on rank 0 (its
    wall time; :meth:`~resmagic.ranktable.RankTable.slowest`), its own on the others.
    """

    scope: ClassVar[str] = "timed"

    label: str | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cuda_synced: bool = False
    ranks: RankTable | None = None

    def _details(self) -> str:
        head = f"{self.label}  " if self.label else ""
        sync = "  (CUDA synchronised)" if self.cuda_synced else ""
        ranks = f"  {self.ranks.summary()}" if self.ranks is not None else ""
        return (
            f"{head}wall {format_seconds(self.wall_s)}  cpu {format_seconds(self.cpu_s)}"
            f"{sync}{ranks}"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class LogReport(Report):
    """``experiment_log``'s report: where the log went and how many records it took.

    Attributes:
        path: the log's path as it was given (relative to the folder the cell ran in).
        file: the same file's absolute path, as it was opened (the sinks upload it).
        records: records written to the file, each a whole line.
        lost: records the file refused (a full disk): none of them is in the file.
        notes: what went wrong with the file, said once for the run, e.g.
            ``"run.log: 480 of 500 records not written: [Errno 28] No space left on device"``.
    """

    scope: ClassVar[str] = "experiment_log"

    path: str = ""
    file: str = ""
    logger: str = ""
    run_id: str = ""
    fmt: str = "text"
    records: int = 0
    lost: int = 0
    notes: tuple[str, ...] = ()

    def _details(self) -> str:
        n = self.records
        lost = f" ({self.lost} lost)" if self.lost else ""
        return (
            f"{self.path}  {n} record{'s' * (n != 1)}{lost}  run {self.run_id}"
            f"  {format_seconds(self.duration_s)}"
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class TransactionReport(Report):
    """``db_transaction``'s report: committed or rolled back, and how many rows changed."""

    scope: ClassVar[str] = "db_transaction"

    path: str = ""
    committed: bool = False
    changes: int = 0

    def _details(self) -> str:
        outcome = f"committed {self.changes} change" if self.committed else "rolled back"
        plural = "s" if self.committed and self.changes != 1 else ""
        return f"{self.path}  {outcome}{plural}  {format_seconds(self.duration_s)}"
