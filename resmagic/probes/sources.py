"""The five built-in memory sources as :class:`~resmagic.probes.probe.Probe` objects.

Each adapts one probe module (``host``, ``workers``, ``cgroup``, ``torch_cuda``, ``nvml``) to
the protocol; :data:`resmagic.probes.table.PROBES` lists them in the order they are shown.
"""

from __future__ import annotations

from resmagic.probes import cgroup, host, launched, nvml, peaks, torch_cuda, workers
from resmagic.probes.peaks import PeakCounter, PeakStack
from resmagic.probes.probe import Kind, Probe, Wants, guarded
from resmagic.probes.reading import DeviceMemory, ProbeStatus

__all__ = ["ALLOCATOR", "CONTAINER", "HOST", "NVML", "WORKERS"]


class _HostLike:
    kind: Kind = "host"
    wide = True  # other processes' memory too, but for the host row itself

    @property
    def peak_stack(self) -> PeakStack | None:
        return None

    def visible(self) -> int:
        return 0


class _Host(_HostLike):
    source = host.SOURCE
    row: str | None = "host"
    wide = False

    @property
    def counter(self) -> PeakCounter | None:
        return peaks.host_peaks if host.peak_is_exact() else None

    def present(self) -> bool:
        return True

    @property
    def peak_stack(self) -> PeakStack | None:
        return peaks.host_peaks

    def status(self) -> ProbeStatus:
        return host.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        return guarded(self.source, lambda: [host.read(peak=peak)])


class _Workers(_HostLike):
    """Child processes: the ``workers`` row, and a row per rank a cell launched (``launched``)."""

    source = workers.SOURCE
    row: str | None = workers.NAME

    @property
    def counter(self) -> PeakCounter | None:
        return None  # sampled: no counter spans processes that come and go

    def present(self) -> bool:
        return True  # a child may start at any moment: always sampled

    def status(self) -> ProbeStatus:
        return workers.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        return guarded(self.source, lambda: launched.read(wants))


class _Container(_HostLike):
    source = cgroup.SOURCE
    row: str | None = cgroup.NAME

    @property
    def counter(self) -> PeakCounter | None:
        return peaks.container_peaks

    def present(self) -> bool:
        return bool(cgroup.read())

    def status(self) -> ProbeStatus:
        return cgroup.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        return guarded(self.source, cgroup.read)


class _Allocator:
    source = torch_cuda.SOURCE
    kind: Kind = "gpu"
    row: str | None = None
    wide = False  # this process's tensors and cache only

    @property
    def counter(self) -> PeakCounter | None:
        return peaks.torch_peaks

    @property
    def peak_stack(self) -> PeakStack | None:
        return peaks.torch_peaks

    def present(self) -> bool:
        return torch_cuda.ready()

    def visible(self) -> int:
        return torch_cuda.visible_count()

    def status(self) -> ProbeStatus:
        return torch_cuda.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        if not torch_cuda.ready():
            return [], None
        count = torch_cuda.device_count
        return guarded(
            self.source, lambda: [torch_cuda.read(i) for i in range(count()) if wants(i)]
        )


class _Nvml:
    source = nvml.SOURCE
    kind: Kind = "gpu"
    row: str | None = None
    wide = True  # device-wide: every process on the GPU

    @property
    def counter(self) -> PeakCounter | None:
        return None  # NVML has no peak: the sampler's maximum, labelled sampled

    @property
    def peak_stack(self) -> PeakStack | None:
        return None

    def present(self) -> bool:
        return bool(nvml.visible())

    def visible(self) -> int:
        return len(nvml.visible())

    def status(self) -> ProbeStatus:
        return nvml.status()

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        return guarded(
            self.source, lambda: [nvml.read(d) for d in nvml.visible() if wants(d.cuda_index)]
        )


HOST: Probe = _Host()
WORKERS: Probe = _Workers()
CONTAINER: Probe = _Container()
ALLOCATOR: Probe = _Allocator()
NVML: Probe = _Nvml()
