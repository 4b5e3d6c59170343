"""The plain values every probe returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["DeviceMemory", "ProbeStatus", "device_memory"]


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    """One reading of one device's memory, in bytes, with the source that said so.

    Attributes:
        name: ``"host"`` or a torch-style device name such as ``"cuda:0"``.
        used_bytes: memory in use now, as the source counts it.
        total_bytes: capacity of the device (or the container limit for ``host``), if known.
        source: who said so: ``"torch allocator"``, ``"NVML"``, ``"RSS"``.
        reserved_bytes: for the torch allocator, bytes held by its cache (tensors + free blocks).
        peak_bytes: a peak counter read at the same moment, where the source has one.
    """

    name: str
    used_bytes: int
    total_bytes: int | None
    source: str
    reserved_bytes: int | None = None
    peak_bytes: int | None = None


# A frozen dataclass sets each field through object.__setattr__; its slots' own setters do
# the same job in half the time (issue 26: gpu_scope makes four readings per block).
_SETTERS = tuple(getattr(DeviceMemory, f.name).__set__ for f in dataclasses.fields(DeviceMemory))
_new = object.__new__


def device_memory(
    name: str,
    used_bytes: int,
    total_bytes: int | None,
    source: str,
    reserved_bytes: int | None = None,
    peak_bytes: int | None = None,
) -> DeviceMemory:
    """``DeviceMemory(...)`` of these fields, made faster: the object its ``__init__`` makes."""
    row: DeviceMemory = _new(DeviceMemory)
    s0, s1, s2, s3, s4, s5 = _SETTERS
    s0(row, name)
    s1(row, used_bytes)
    s2(row, total_bytes)
    s3(row, source)
    s4(row, reserved_bytes)
    s5(row, peak_bytes)
    return row


@dataclass(frozen=True, slots=True)
class ProbeStatus:
    """Whether a probe works here; ``detail`` says how it works, or in words why it does not."""

    name: str
    available: bool
    detail: str = ""

    def __str__(self) -> str:
        detail = self.detail or ("available" if self.available else "unavailable")
        # "NVML unavailable: no driver" already names the probe.
        return detail if detail.startswith(self.name) else f"{self.name}: {detail}"
