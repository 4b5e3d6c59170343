"""The one fake allowed: a small, honest stand-in for the CUDA/NVML probe seam.

``FakeTorch`` models what resmagic reads from ``torch.cuda``: a caching allocator per device
with current/peak/reserved counters, lazy CUDA initialisation, and the calls that would
initialise CUDA as a side effect in real torch (any call without an explicit device while
CUDA is not initialised). Such a call is recorded in ``side_effect_inits``: tests assert it
stays empty. ``FakeNvml`` models the pynvml calls resmagic uses, with UUIDs, a v2 memory
struct, the compute processes on each GPU (pid and bytes, as the driver lists them), and an
init that can fail the way a machine without a driver fails.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import SupportsInt

GiB = 1 << 30


class FakeOutOfMemoryError(RuntimeError):
    """Stands for torch.cuda.OutOfMemoryError (a RuntimeError subclass in torch)."""


@dataclass
class _Device:
    total: int
    uuid: str
    allocated: int = 0
    reserved: int = 0
    peak: int = 0


@dataclass
class FakeCuda:
    devices: list[_Device]
    initialized: bool = False
    side_effect_inits: list[str] = field(default_factory=list)
    synchronized: list[int] = field(default_factory=list)
    empty_cache_calls: int = 0
    OutOfMemoryError: type = FakeOutOfMemoryError

    # -- test controls ---------------------------------------------------------------------
    def init(self) -> None:
        self.initialized = True

    def malloc(self, index: int, n: int) -> None:
        assert self.initialized, "allocate only after init()"
        d = self.devices[index]
        d.allocated += n
        d.reserved = max(d.reserved, d.allocated)
        d.peak = max(d.peak, d.allocated)

    def free(self, index: int, n: int) -> None:
        self.devices[index].allocated -= n  # the cache keeps it reserved

    # -- what real torch.cuda offers -------------------------------------------------------
    def _implicit(self, what: str, device: SupportsInt | None) -> int:
        if device is None:
            if not self.initialized:
                self.side_effect_inits.append(what)
                self.initialized = True
            return 0
        return int(device)

    def is_initialized(self) -> bool:
        return self.initialized

    def device_count(self) -> int:
        return len(self.devices)

    def memory_allocated(self, device: SupportsInt | None = None) -> int:
        return (
            self.devices[self._implicit("memory_allocated", device)].allocated
            if self.initialized
            else 0
        )

    def memory_reserved(self, device: SupportsInt | None = None) -> int:
        return (
            self.devices[self._implicit("memory_reserved", device)].reserved
            if self.initialized
            else 0
        )

    def max_memory_allocated(self, device: SupportsInt | None = None) -> int:
        return (
            self.devices[self._implicit("max_memory_allocated", device)].peak
            if self.initialized
            else 0
        )

    def reset_peak_memory_stats(self, device: SupportsInt | None = None) -> None:
        d = self.devices[self._implicit("reset_peak_memory_stats", device)]
        d.peak = d.allocated

    def empty_cache(self) -> None:
        if self.initialized:
            self.empty_cache_calls += 1
            for d in self.devices:
                d.reserved = d.allocated

    def synchronize(self, device: SupportsInt | None = None) -> None:
        self.synchronized.append(self._implicit("synchronize", device))

    def get_device_properties(self, device: SupportsInt | None) -> types.SimpleNamespace:
        d = self.devices[self._implicit("get_device_properties", device)]
        return types.SimpleNamespace(total_memory=d.total, uuid=d.uuid.removeprefix("GPU-"))

    def mem_get_info(self, device: SupportsInt | None = None) -> tuple[int, int]:
        self.side_effect_inits.append("mem_get_info")  # creates a context in real torch
        raise AssertionError("resmagic must never call mem_get_info")


class FakeTorch:
    """A ``torch`` module with a fake ``cuda`` submodule and a built-with-CUDA backend."""

    def __init__(self, n_devices: int = 1, total: int = 16 * GiB) -> None:
        uuids = [f"GPU-{i:08x}-aaaa-bbbb-cccc-{i:012x}" for i in range(n_devices)]
        self.cuda = FakeCuda([_Device(total, u) for u in uuids])
        self.backends = types.SimpleNamespace(cuda=types.SimpleNamespace(is_built=lambda: True))


class NVMLError(Exception):
    """pynvml.NVMLError."""


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N818 - pynvml's own name
    """What nvmlInit raises on a machine without the driver library."""

    def __str__(self) -> str:
        return "NVML Shared Library Not Found"


@dataclass
class _NvmlDevice:
    uuid: str
    total: int
    used: int = 0
    reserved: int = 300 << 20
    processes: dict[int, int | None] = field(default_factory=dict)
    """The compute processes on the GPU: pid -> bytes (None: NVML gives no figure)."""


@dataclass(frozen=True)
class _ProcessInfo:
    """pynvml's c_nvmlProcessInfo_t: what nvmlDeviceGetComputeRunningProcesses lists."""

    pid: int
    usedGpuMemory: int | None


class FakeNvml:
    """The pynvml calls resmagic makes, over a list of GPUs in PCI order."""

    NVMLError = NVMLError
    nvmlMemory_v2 = 0x02000028

    def __init__(
        self,
        uuids: list[str] | None = None,
        total: int = 16 * GiB,
        fail_init: bool = False,
        v2: bool = True,
    ) -> None:
        uuids = (
            uuids
            if uuids is not None
            else [f"GPU-{i:08x}-aaaa-bbbb-cccc-{i:012x}" for i in range(2)]
        )
        self.devices = [_NvmlDevice(u, total) for u in uuids]
        self.fail_init = fail_init
        self.v2 = v2
        self.inits = 0
        self.shutdowns = 0

    lost = False
    """Set True and every memory reading fails as a GPU fallen off the bus does."""

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise NVMLError_LibraryNotFound
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _NvmlDevice:
        return self.devices[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> _NvmlDevice:
        for d in self.devices:
            if d.uuid == uuid:
                return d
        raise NVMLError("Not Found")

    def nvmlDeviceGetUUID(self, handle: _NvmlDevice) -> str:
        return handle.uuid

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _NvmlDevice) -> list[_ProcessInfo]:
        if self.lost:
            raise NVMLError("GPU is lost")
        return [_ProcessInfo(pid, used) for pid, used in handle.processes.items()]

    def nvmlDeviceGetMemoryInfo(
        self, handle: _NvmlDevice, version: int | None = None
    ) -> types.SimpleNamespace:
        if self.lost:
            raise NVMLError("GPU is lost")
        if version is not None:
            if not self.v2:
                raise NVMLError("Function Not Found")
            return types.SimpleNamespace(
                total=handle.total, used=handle.used, reserved=handle.reserved
            )
        # v1 counts driver-reserved memory as used
        return types.SimpleNamespace(total=handle.total, used=handle.used + handle.reserved)


class FakeNvmlWithMig(FakeNvml):
    """A ``FakeNvml`` whose first GPU is split into MIG instances.

    As in NVML, a MIG instance is not among the devices counted and enumerated by index; it
    is found by its ``MIG-`` UUID, the form ``CUDA_VISIBLE_DEVICES`` may hold.
    """

    def __init__(self, mig_uuids: list[str], uuids: list[str] | None = None) -> None:
        super().__init__(uuids=uuids)
        self.mig = [_NvmlDevice(u, self.devices[0].total // len(mig_uuids)) for u in mig_uuids]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> _NvmlDevice:
        for d in self.mig:
            if d.uuid == uuid:
                return d
        return super().nvmlDeviceGetHandleByUUID(uuid)


def spike(cuda: FakeCuda, index: int, n: int) -> None:
    """Allocate ``n`` bytes on device ``index`` and free them: a transient only a peak shows."""
    cuda.malloc(index, n)
    cuda.free(index, n)


_ROOT = str(Path(__file__).resolve().parents[1])

FAKE_GPU_IN_KERNEL = f"""
import sys
sys.path.insert(0, {_ROOT!r})
from resmagic.probes import nvml, torch_cuda
from tests.fakes import FakeNvml, FakeTorch
fake = FakeTorch(n_devices=1)
nv = FakeNvml(uuids=[fake.cuda.devices[0].uuid])
torch_cuda.backend, nvml.backend = fake, nv
nvml.reset()
fake.cuda.init()              # the user's code initialised CUDA in an earlier cell
fake.cuda.malloc(0, 1 << 30)  # 1 GiB of tensors before the cell
nv.devices[0].used = 2 << 30  # NVML also counts the context and the allocator's cache
"""
"""Code for a kernel cell: one fake GPU through the probe seams (``fake``, ``nv``)."""
