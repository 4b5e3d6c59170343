"""PyTorch caching-allocator memory per CUDA device, read only when it costs nothing extra.

Nothing here imports torch or initialises CUDA: every reading first checks that ``torch`` is
already in ``sys.modules`` and that ``torch.cuda.is_initialized()``; otherwise it reports no
device. Every call passes an explicit device index, because the current device is
thread-local and calls without one (``reset_peak_memory_stats()``, ``synchronize()``)
initialise CUDA.
"""

from __future__ import annotations

import sys
from typing import Any

from resmagic.probes.reading import DeviceMemory, ProbeStatus

__all__ = [
    "device_count",
    "empty_cache",
    "imported",
    "is_oom",
    "peaks",
    "read",
    "read_all",
    "ready",
    "reset_peaks",
    "status",
    "synchronize",
    "uuid",
    "visible_count",
]

SOURCE = "torch allocator"

# Test seam: a stand-in for the ``torch`` module (see tests/fakes.py). None means "the real
# torch, if the user imported it".
backend: Any = None

_totals: dict[int, int] = {}


def _torch() -> Any:
    return backend if backend is not None else sys.modules.get("torch")


def imported() -> bool:
    """True once torch is imported (or a test's stand-in set): its source may give rows."""
    return _torch() is not None


def ready() -> bool:
    """True when torch is imported and has initialised CUDA, so reading costs no context."""
    torch = _torch()
    return torch is not None and bool(torch.cuda.is_initialized())


def device_count() -> int:
    """Number of CUDA devices torch sees, or 0 when CUDA is not initialised."""
    return int(_torch().cuda.device_count()) if ready() else 0


def visible_count() -> int:
    """Devices torch uses, once it has initialised CUDA; before that 0, asking nothing.

    Before CUDA is up, ``torch.cuda.device_count()`` asks NVML and, where NVML cannot count
    (MIG ids in ``CUDA_VISIBLE_DEVICES``, no libnvidia-ml), falls back to
    ``cudaGetDeviceCount``: ``cuInit``, after which a forking launcher's ranks cannot use
    CUDA (issue 28; accelerate#3925). resmagic's own NVML probe counts GPUs instead.
    """
    return device_count()


def read(index: int) -> DeviceMemory:
    """Allocator reading of ``cuda:index``: tensors (used), cache (reserved), peak since reset."""
    cuda = _torch().cuda
    if index not in _totals:
        _totals[index] = int(cuda.get_device_properties(index).total_memory)
    return DeviceMemory(
        f"cuda:{index}",
        int(cuda.memory_allocated(index)),
        _totals[index],
        SOURCE,
        reserved_bytes=int(cuda.memory_reserved(index)),
        peak_bytes=int(cuda.max_memory_allocated(index)),
    )


def read_all() -> list[DeviceMemory]:
    """Readings of every device, or an empty list when CUDA is not initialised."""
    return [read(i) for i in range(device_count())]


def peaks() -> dict[str, int]:
    """Peak allocated bytes per device since its last reset (exact: updated on every malloc)."""
    if not ready():
        return {}
    cuda = _torch().cuda
    return {f"cuda:{i}": int(cuda.max_memory_allocated(i)) for i in range(cuda.device_count())}


def reset_peaks() -> None:
    """Reset every initialised device's peak counters to their current values."""
    if ready():
        cuda = _torch().cuda
        for i in range(cuda.device_count()):
            cuda.reset_peak_memory_stats(i)


def empty_cache() -> bool:
    """Release the allocator's unused cached blocks; a no-op (False) before CUDA is initialised."""
    if not ready():
        return False
    _torch().cuda.empty_cache()
    return True


def synchronize() -> bool:
    """Wait for queued kernels on every device; False (and no wait) before CUDA is initialised."""
    if not ready():
        return False
    cuda = _torch().cuda
    for i in range(cuda.device_count()):
        cuda.synchronize(i)
    return True


def uuid(index: int) -> str | None:
    """The device's UUID as NVML spells it (``GPU-…``), to match torch and NVML devices."""
    if not ready():
        return None
    raw = getattr(_torch().cuda.get_device_properties(index), "uuid", None)
    if raw is None:
        return None
    text = str(raw)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def is_oom(exc: BaseException) -> bool:
    """True for ``torch.cuda.OutOfMemoryError`` (or an older torch's "out of memory" error)."""
    torch = _torch()
    if torch is None:
        return False
    oom = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom is not None and isinstance(exc, oom):
        return True
    return isinstance(exc, RuntimeError) and "CUDA out of memory" in str(exc)


def status() -> ProbeStatus:
    """Say whether allocator figures are available, and in words why not."""
    torch = _torch()
    if torch is None:
        return ProbeStatus(SOURCE, False, "torch not imported")
    built = getattr(getattr(torch, "backends", None), "cuda", None)
    if built is not None and not built.is_built():
        return ProbeStatus(SOURCE, False, "this torch build has no CUDA (CPU-only)")
    if not torch.cuda.is_initialized():
        return ProbeStatus(SOURCE, False, "CUDA not initialised yet (no tensor on a GPU so far)")
    n = torch.cuda.device_count()
    return ProbeStatus(SOURCE, True, f"{n} device{'s' * (n != 1)}, exact peaks")
