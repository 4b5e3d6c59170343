"""One protocol for the memory sources, so a scope reads them in a loop.

Each :class:`Probe` names its source, holds its exact peak counter (or none: its peak is
sampled), says in words whether it works here, and reads the devices a scope wants without
ever raising: a driver that fails mid-read ("GPU is lost") gives no rows and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from resmagic.probes import cgroup, host, nvml, peaks, torch_cuda, workers
from resmagic.probes.peaks import PeakCounter
from resmagic.probes.reading import DeviceMemory, ProbeStatus

__all__ = [
    "ALLOCATOR",
    "CONTAINER",
    "HOST",
    "NVML",
    "WORKERS",
    "Probe",
    "Wants",
    "describe_failure",
]

Wants = Callable[[int], bool]
"""Whether a scope measures the GPU of this CUDA index."""


def describe_failure(source: str, exc: BaseException) -> str:
    """``"NVML: reading failed (NVMLError: GPU is lost)"``: a note for the report."""
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return f"{source}: reading failed ({detail})"


class Probe(Protocol):
    """A memory source as a scope sees it."""

    source: str
    """Who says so: ``"RSS"``, ``"torch allocator"``, ``"NVML"``."""

    @property
    def counter(self) -> PeakCounter | None:
        """The exact peak counter here, or None: this source's peak is sampled."""
        ...

    def present(self) -> bool:
        """True when a read may give rows now (the host always; a GPU source when ready)."""
        ...

    def status(self) -> ProbeStatus:
        """Whether the source works here and, if not, why, in words."""
        ...

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        """Rows for the wanted devices, and None, or no rows and what failed; never raises."""
        ...


def _guarded(
    source: str, read: Callable[[], list[DeviceMemory]]
) -> tuple[list[DeviceMemory], str | None]:
    try:
        return read(), None
    except Exception as exc:
        return [], describe_failure(source, exc)


class _Host:
    source = host.SOURCE

    @property
    def counter(self) -> PeakCounter | None:
        return peaks.host_peaks if host.peak_is_exact() else None

    def present(self) -> bool:
        return True

    def status(self) -> ProbeStatus:
        return host.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        return _guarded(self.source, lambda: [host.read(peak=peak)])


class _Workers:
    source = workers.SOURCE

    @property
    def counter(self) -> PeakCounter | None:
        return None  # sampled: no counter spans processes that come and go

    def present(self) -> bool:
        return True  # a child may start at any moment: always sampled

    def status(self) -> ProbeStatus:
        return workers.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        return _guarded(self.source, lambda: [workers.read()])


class _Container:
    source = cgroup.SOURCE

    @property
    def counter(self) -> PeakCounter | None:
        return peaks.container_peaks

    def present(self) -> bool:
        return bool(cgroup.read())

    def status(self) -> ProbeStatus:
        return cgroup.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        return _guarded(self.source, cgroup.read)


class _Allocator:
    source = torch_cuda.SOURCE

    @property
    def counter(self) -> PeakCounter | None:
        return peaks.torch_peaks

    def present(self) -> bool:
        return torch_cuda.ready()

    def status(self) -> ProbeStatus:
        return torch_cuda.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        if not torch_cuda.ready():
            return [], None
        count = torch_cuda.device_count
        return _guarded(
            self.source, lambda: [torch_cuda.read(i) for i in range(count()) if wants(i)]
        )


def _allocator_rows(wants: Wants) -> list[DeviceMemory]:
    return [torch_cuda.read(i) for i in range(torch_cuda.device_count()) if wants(i)]


class _Nvml:
    source = nvml.SOURCE

    @property
    def counter(self) -> PeakCounter | None:
        return None  # NVML has no peak: the sampler's maximum, labelled sampled

    def present(self) -> bool:
        return bool(nvml.visible())

    def status(self) -> ProbeStatus:
        return nvml.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        return _guarded(
            self.source, lambda: [nvml.read(d) for d in nvml.visible() if wants(d.cuda_index)]
        )


HOST: Probe = _Host()
WORKERS: Probe = _Workers()
CONTAINER: Probe = _Container()
ALLOCATOR: Probe = _Allocator()
NVML: Probe = _Nvml()
