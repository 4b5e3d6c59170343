"""The records scopes emit, the bus that carries them to sinks, and the session's history.

One report type per scope, frozen, units in the field names. A scope publishes its report
when it closes, also when its body raised; every published report is appended to
:func:`history` and handed to each subscriber (the panel, the text renderer, an open
experiment log).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from resmagic.config import settings
from resmagic.units import format_bytes, format_seconds

if TYPE_CHECKING:
    import pandas

__all__ = [
    "DeviceReport",
    "GpuReport",
    "LogReport",
    "Report",
    "Status",
    "TimingReport",
    "TransactionReport",
    "clear_history",
    "current_cell",
    "describe_error",
    "history",
    "history_frame",
    "publish",
    "status_of",
    "subscribe",
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
    """``"ZeroDivisionError: division by zero"``, shortened to one line of at most 200 chars."""
    if exc is None:
        return None
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= 200 else line[:199] + "…"


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
        return {"scope": self.scope, **dataclasses.asdict(self)}

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
        name: ``"host"`` or ``"cuda:N"``.
        source: ``"torch allocator"``, ``"NVML"`` or ``"RSS"``.
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
    """

    scope: ClassVar[str] = "gpu_scope"

    devices: tuple[DeviceReport, ...] = ()
    notes: tuple[str, ...] = ()
    reclaimed: bool = False

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
        return "  ".join([*parts, format_seconds(self.duration_s)])


@dataclass(frozen=True, kw_only=True, slots=True)
class TimingReport(Report):
    """``timed``'s report: wall and CPU seconds, CUDA-synchronised when CUDA was in use."""

    scope: ClassVar[str] = "timed"

    label: str | None = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    cuda_synced: bool = False

    def _details(self) -> str:
        head = f"{self.label}  " if self.label else ""
        sync = "  (CUDA synchronised)" if self.cuda_synced else ""
        return f"{head}wall {format_seconds(self.wall_s)}  cpu {format_seconds(self.cpu_s)}{sync}"


@dataclass(frozen=True, kw_only=True, slots=True)
class LogReport(Report):
    """``experiment_log``'s report: where the log went and how many records it took."""

    scope: ClassVar[str] = "experiment_log"

    path: str = ""
    logger: str = ""
    run_id: str = ""
    fmt: str = "text"
    records: int = 0

    def _details(self) -> str:
        n = self.records
        return (
            f"{self.path}  {n} record{'s' * (n != 1)}  run {self.run_id}"
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


# --- the bus and the history ------------------------------------------------------------

_lock = threading.Lock()
_history: deque[Report] = deque()
_subscribers: list[Callable[[Report], None]] = []
_cell_provider: Callable[[], int | None] | None = None


def set_cell_provider(provider: Callable[[], int | None] | None) -> None:
    """Tell scopes how to learn the current cell number (the IPython layer sets this)."""
    global _cell_provider
    _cell_provider = provider


def current_cell() -> int | None:
    """The execution count of the running cell, or None outside IPython."""
    provider = _cell_provider
    return provider() if provider is not None else None


def publish(report: Report, listeners: Sequence[Callable[[Report], None]] = ()) -> None:
    """Append ``report`` to the history, hand it to every subscriber, then to ``listeners``.

    ``listeners`` are the sinks of this report alone (the logs the scope was opened in). A
    subscriber or listener that raises is reported as a warning and does not stop the others,
    nor the scope that published.
    """
    with _lock:
        _history.append(report)
        _trim()
        subscribers = list(_subscribers)
    for callback in (*subscribers, *listeners):
        try:
            callback(report)
        except Exception as exc:
            warnings.warn(f"resmagic: a report sink failed: {exc!r}", RuntimeWarning, stacklevel=2)


def subscribe(callback: Callable[[Report], None]) -> Callable[[], None]:
    """Receive every report published from now on; returns the function that unsubscribes."""
    with _lock:
        _subscribers.append(callback)

    def unsubscribe() -> None:
        with _lock:
            if callback in _subscribers:
                _subscribers.remove(callback)

    return unsubscribe


def history() -> list[Report]:
    """Every report of this session, oldest first (bounded by ``settings.history_limit``)."""
    with _lock:
        _trim()  # the limit may have been lowered since the last publish
        return list(_history)


def _trim() -> None:
    while len(_history) > settings.history_limit:
        _history.popleft()


def clear_history() -> None:
    """Forget every report so far."""
    with _lock:
        _history.clear()


def history_frame() -> pandas.DataFrame:
    """The history as a pandas DataFrame: one row per report and device (tidy form).

    Reports without devices (``timed``, ``experiment_log``, ``db_transaction``) take one row
    with empty device columns.

    Raises:
        ImportError: pandas is not installed; the message says how to install it.
    """
    try:
        import pandas
    except ImportError as exc:
        msg = "history_frame() needs pandas: pip install pandas (or use resmagic.history())"
        raise ImportError(msg) from exc
    rows: list[dict[str, Any]] = []
    for report in history():
        record = report.to_dict()
        devices = record.pop("devices", None) or [None]
        if "notes" in record:
            record["notes"] = "; ".join(record["notes"])
        for device in devices:
            row = dict(record)
            if device is not None:
                row["device"] = device.pop("name")
                row.update(device)
            rows.append(row)
    return pandas.DataFrame(rows)
