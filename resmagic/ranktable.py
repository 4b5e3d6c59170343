"""The rank table a report carries: each rank's figures over one scope, and which rank peaked.

``gpu_scope(ranks=True)`` and ``timed(ranks=True)`` inside a ``torch.distributed`` process
group gather every rank's record to rank 0 (:mod:`resmagic.ranks` does the exchange); rank
0's report then carries a :class:`RankTable` with one :class:`RankRow` per rank, in rank
order, and another rank's report carries its own row alone. A rank whose record did not
arrive is a row too: status ``"missing"``, and why in ``error``.

Plain frozen values, like the report that carries them: ``report.to_dict()`` turns them
into JSON-ready dicts for the run store and the sinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from resmagic.units import format_bytes, format_seconds, format_table

__all__ = [
    "MISSING",
    "PREFIX",
    "RankDevice",
    "RankRow",
    "RankTable",
    "RowStatus",
    "carried_elsewhere",
    "device_label",
    "is_rank_row",
    "rank_device_rows",
    "rank_row",
]

RowStatus = Literal["ok", "error", "interrupted", "missing"]

MISSING: RowStatus = "missing"
"""A rank row's status when its record did not reach rank 0 (``error`` says why)."""


PREFIX = "rank "
"""A rank's device rows are named so: ``rank 1`` (its host memory), ``rank 1 cuda:0``; as rows
of a ``%%gpu_scope`` cell that launched the ranks, and in the run store for ``top``."""


def rank_row(rank: int, device: str = "host") -> str:
    """``"rank 1"`` (host memory) or ``"rank 1 cuda:0"``: the row of ``rank`` on ``device``."""
    return f"{PREFIX}{rank}" if device == "host" else f"{PREFIX}{rank} {device}"


def is_rank_row(name: str) -> bool:
    """True for a device row of a rank (``rank N`` or ``rank N cuda:M``)."""
    return name.startswith(PREFIX)


def carried_elsewhere(report: object) -> bool:
    """True for a report of ``ranks=True`` on a rank other than 0: rank 0's report carries it.

    Only rank 0 sends a ranks scope's report to the run store and the sinks.
    """
    table = getattr(report, "ranks", None)
    return table is not None and table.rank != 0


def rank_device_rows(table: dict[str, Any]) -> list[dict[str, Any]]:
    """A rank table (``report.to_dict()["ranks"]``) as device rows: ``rank N``, ``rank N cuda:M``.

    Each rank's host and GPU rows, renamed, with ``rank``: the run store keeps them beside
    the report's own devices, so ``%resmagic top`` and ``runs()`` rank them like devices.
    Only rank 0's table has the others' rows; a missing rank has none.
    """
    out = []
    for row in table.get("rows") or ():
        for device in row.get("devices") or ():
            name = device["name"]
            if name == "host" or name.startswith("cuda:"):
                out.append({**device, "name": rank_row(row["rank"], name), "rank": row["rank"]})
    return out


def device_label(name: str, source: str) -> str:
    """``"host"``, ``"cuda:0"`` (torch's allocator) or ``"cuda:0 NVML"``: a device in words."""
    return f"{name} NVML" if source == "NVML" else name


@dataclass(frozen=True, slots=True)
class RankDevice:
    """One device row of one rank's report, in bytes (the rank's ``DeviceReport``, trimmed).

    Attributes:
        name: ``"host"``, ``"cuda:N"``, ``"workers"``, ``"container"``.
        source: ``"RSS"``, ``"torch allocator"``, ``"NVML"``...
        before_bytes: in use when the rank's scope opened.
        peak_bytes: the most in use while it was open.
        after_bytes: in use when it closed.
        total_bytes: the device's capacity, if known.
        peak_exact: the peak is a counter's (else sampled).
    """

    name: str
    source: str
    before_bytes: int
    peak_bytes: int
    after_bytes: int
    total_bytes: int | None
    peak_exact: bool

    @property
    def label(self) -> str:
        """The device in words: ``"cuda:0 NVML"`` for NVML's device-wide row."""
        return device_label(self.name, self.source)


@dataclass(frozen=True, slots=True)
class RankRow:
    """What one rank measured over one scope, or why rank 0 has nothing from it.

    Attributes:
        rank: the rank in the default process group.
        status: ``"ok"``, ``"error"``, ``"interrupted"`` (the rank's scope), or ``"missing"``.
        wall_s: seconds the rank's scope was open; None for a missing rank.
        error: ``"Type: message"`` of what ended the rank's scope; for a missing rank, why.
        devices: the rank's device rows (none for ``timed``).
        pid: the rank's process id; None for a missing rank.
        host: the rank's host name; ``""`` for a missing rank.
    """

    rank: int
    status: RowStatus
    wall_s: float | None
    error: str | None = None
    devices: tuple[RankDevice, ...] = ()
    pid: int | None = None
    host: str = ""

    def peak(self, device: str = "host") -> int | None:
        """Peak bytes of ``device`` (a :func:`device_label`); ``"cuda"``: its largest GPU.

        ``"cuda"`` takes the torch allocator's rows where there are any (exact, this
        process's own), else NVML's (device-wide: every process on the GPU).
        """
        if device != "cuda":
            return next((d.peak_bytes for d in self.devices if d.label == device), None)
        gpus = [d for d in self.devices if d.name.startswith("cuda:")]
        own = [d for d in gpus if d.source != "NVML"] or gpus
        return max((d.peak_bytes for d in own), default=None)


@dataclass(frozen=True, slots=True)
class RankTable:
    """Every rank's row of one scope (on rank 0), or this rank's own (on the others).

    Attributes:
        rank: this process's rank.
        size: how many ranks the default group has.
        rows: one :class:`RankRow` per rank in rank order on rank 0; elsewhere the rank's own.
        waited_s: seconds rank 0 waited for the others' records (0 elsewhere); never part of
            the scope's own wall time or peaks.
        interrupted: Ctrl-C ended rank 0's wait; the scope raises it once its report is out.
        note: what went wrong with the exchange itself, in words; ``""`` when nothing did.
    """

    rank: int
    size: int
    rows: tuple[RankRow, ...]
    waited_s: float = 0.0
    interrupted: bool = False
    note: str = ""

    @property
    def missing(self) -> tuple[RankRow, ...]:
        """The ranks whose record did not arrive."""
        return tuple(row for row in self.rows if row.status == MISSING)

    def devices(self) -> list[str]:
        """The devices the ranks reported (:func:`device_label` each), in first-seen order."""
        seen: dict[str, None] = {}
        for row in self.rows:
            seen.update(dict.fromkeys(d.label for d in row.devices))
        return list(seen)

    def peak(self, device: str = "host") -> tuple[int, int] | None:
        """``(rank, bytes)``: the largest peak of ``device`` over the ranks that reported.

        ``device`` as :meth:`RankRow.peak` takes it; ties go to the lowest rank.
        """
        best: tuple[int, int] | None = None
        for row in self.rows:
            value = row.peak(device)
            if value is not None and (best is None or value > best[1]):
                best = (row.rank, value)
        return best

    def peaks(self) -> dict[str, tuple[int, int]]:
        """:meth:`peak` of every device the ranks reported: label → ``(rank, bytes)``."""
        found = {device: self.peak(device) for device in self.devices()}
        return {device: best for device, best in found.items() if best is not None}

    def slowest(self) -> tuple[int, float] | None:
        """``(rank, wall_s)`` of the rank whose scope was open longest, of those that reported."""
        timed = [(row.rank, row.wall_s) for row in self.rows if row.wall_s is not None]
        return max(timed, key=lambda pair: pair[1], default=None)

    def summary(self) -> str:
        """``"ranks 2 of 2, host peak 250 MiB on rank 1"``: who peaked, who is missing."""
        seen = len(self.rows) - len(self.missing)
        parts = [f"ranks {seen} of {self.size}" if self.rank == 0 else f"rank {self.rank}"]
        if self.rank == 0:
            peaks = self.peaks()
            for device in self._shown():
                rank, value = peaks[device]
                parts.append(f"{device} peak {format_bytes(value)} on rank {rank}")
            slowest = self.slowest()
            if slowest is not None and self.size > 1:
                parts.append(f"slowest rank {slowest[0]} ({format_seconds(slowest[1])})")
            parts += [f"rank {row.rank} missing" for row in self.missing]
        if self.interrupted:
            parts.append("wait interrupted")
        if self.note:
            parts.append(self.note)
        return ", ".join(parts)

    def _shown(self) -> list[str]:
        """The host and each GPU once: torch's allocator row, NVML's where there is none."""
        devices = self.devices()
        allocator = {d for d in devices if d.startswith("cuda:") and " " not in d}
        return [
            d
            for d in devices
            if d == "host" or d in allocator or (d.endswith(" NVML") and d[:-5] not in allocator)
        ]

    def table(self) -> str:
        """The rows as a text table: rank, status, wall, each device's peak, error or why."""
        devices = self._shown()
        head = ["rank", "status", "wall", *(f"{d} peak" for d in devices), "error"]
        lines = [head]
        for row in self.rows:
            peaks = [row.peak(d) for d in devices]
            lines.append(
                [
                    str(row.rank),
                    row.status,
                    format_seconds(row.wall_s) if row.wall_s is not None else "",
                    *(format_bytes(p) if p is not None else "" for p in peaks),
                    row.error or "",
                ]
            )
        return format_table(lines)
