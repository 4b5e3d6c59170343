"""The plain values every probe returns."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DeviceMemory", "ProbeStatus"]


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
