"""Device-wide GPU memory from NVML, mapped onto torch's ``cuda:N`` names.

NVML counts every process and the CUDA contexts too, so its ``used`` is higher than the
torch allocator's figure; it has no peak counter, so peaks from here are sampled. NVML is
initialised once, lazily, under a lock; when it cannot be (no driver, no library) the probe
says why once and reports no devices. NVML numbers GPUs in PCI order and ignores
``CUDA_VISIBLE_DEVICES``; CUDA numbers the visible ones from 0. :func:`visible` maps one onto
the other without creating a CUDA context: by UUID when torch has initialised CUDA, else by
reading ``CUDA_VISIBLE_DEVICES`` (integers, ``GPU-`` UUIDs or prefixes, ``MIG-`` ids).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

from resmagic.probes import torch_cuda
from resmagic.probes.reading import DeviceMemory, ProbeStatus

__all__ = [
    "Visible",
    "process_memory",
    "read",
    "read_all",
    "reset",
    "status",
    "unavailable",
    "visible",
]

SOURCE = "NVML"

# Test seam: a stand-in for the ``pynvml`` module (see tests/fakes.py).
backend: Any = None


@dataclass(frozen=True, slots=True)
class Visible:
    """A GPU as CUDA numbers it (``cuda_index``) with its NVML handle and UUID."""

    cuda_index: int
    handle: Any
    uuid: str


class _Nvml:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.module: Any = None
        self.error: str | None = None
        self.started = False
        self.v2: bool | None = None
        self.mapping: tuple[str, tuple[Visible, ...]] | None = None

    def start(self) -> Any:
        """Return the initialised pynvml module, or None with ``self.error`` set."""
        if self.started:
            return self.module
        with self.lock:
            if not self.started:
                self._start()
                self.started = True
        return self.module

    def _start(self) -> None:
        if backend is None and _no_driver_here():
            self.error = "no NVIDIA driver loaded (/proc/driver/nvidia is missing)"
            return
        try:
            module = backend if backend is not None else _import_pynvml()
        except ImportError:
            self.error = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return
        try:
            module.nvmlInit()
        except Exception as exc:  # NVMLError and its many subclasses, or a broken library
            self.error = _describe(exc)
            return
        self.module = module
        atexit.register(_shutdown, module)


def _no_driver_here() -> bool:
    # Skips importing pynvml and dlopen-ing a library that is not there (~30 ms) on the
    # common GPU-less Linux box. WSL has no /proc/driver/nvidia but has /dev/dxg.
    return (
        sys.platform.startswith("linux")
        and not os.path.exists("/proc/driver/nvidia")
        and not os.path.exists("/dev/dxg")
    )


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[0].upper() + text[1:] if text else type(exc).__name__


def _shutdown(module: Any) -> None:
    with contextlib.suppress(Exception):  # interpreter exit: nothing useful to do with it
        module.nvmlShutdown()


_state = _Nvml()


def reset() -> None:
    """Forget NVML's state so the next call initialises again (tests swap the backend)."""
    global _state
    _state = _Nvml()


def status() -> ProbeStatus:
    """Say whether NVML works here, and in words why not."""
    module = _state.start()
    if module is None:
        return ProbeStatus(SOURCE, False, f"NVML unavailable: {_state.error}")
    n = len(visible())
    return ProbeStatus(SOURCE, True, f"{n} visible device{'s' * (n != 1)}, device-wide, sampled")


def unavailable() -> str | None:
    """Why NVML gives no rows in this process (no driver, no library, init failed), else None.

    Settled at the first call: the reason stays until :func:`reset`.
    """
    return _state.error if _state.start() is None else None


def visible() -> tuple[Visible, ...]:
    """The GPUs this process can use, numbered as CUDA (and torch) number them."""
    module = _state.start()
    if module is None:
        return ()
    key = os.environ.get("CUDA_VISIBLE_DEVICES", "\0") + f"|{torch_cuda.ready()}"
    cached = _state.mapping
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        devices = _map_devices(module)
    except Exception as exc:  # a driver error while enumerating: report, do not raise
        _state.error = _describe(exc)
        devices = ()
    _state.mapping = (key, devices)
    return devices


def _map_devices(nv: Any) -> tuple[Visible, ...]:
    handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
    by_uuid = {_text(nv.nvmlDeviceGetUUID(h)): h for h in handles}
    if torch_cuda.ready():
        uuids = [torch_cuda.uuid(i) for i in range(torch_cuda.device_count())]
        if all(uuids):
            chosen = [(u, by_uuid.get(u or "") or _by_uuid(nv, u or "")) for u in uuids]
            return _visible(nv, chosen)
    spec = os.environ.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return _visible(nv, list(by_uuid.items()))
    chosen = []
    for raw in spec.split(","):
        entry = raw.strip()
        handle, uuid = _resolve(nv, entry, handles, by_uuid)
        # CUDA stops at the first entry it cannot use, and refuses duplicates.
        if handle is None or uuid in {u for u, _ in chosen}:
            break
        chosen.append((uuid, handle))
    return _visible(nv, chosen)


def _resolve(nv: Any, entry: str, handles: list[Any], by_uuid: dict[str, Any]) -> tuple[Any, str]:
    if not entry:  # CUDA_VISIBLE_DEVICES="" hides every GPU; "" would prefix-match a lone one
        return None, ""
    if entry.lstrip("-").isdigit():
        index = int(entry)
        if 0 <= index < len(handles):
            return handles[index], _text(nv.nvmlDeviceGetUUID(handles[index]))
        return None, ""
    if entry.startswith("MIG-"):
        handle = _by_uuid(nv, entry)
        return handle, entry
    prefix = entry if entry.startswith("GPU-") else f"GPU-{entry}"
    matches = [u for u in by_uuid if u.startswith(prefix)]
    if len(matches) == 1:
        return by_uuid[matches[0]], matches[0]
    return None, ""


def _by_uuid(nv: Any, uuid: str) -> Any:
    try:
        return nv.nvmlDeviceGetHandleByUUID(uuid)
    except Exception:
        return None


def _visible(nv: Any, chosen: list[tuple[str | None, Any]]) -> tuple[Visible, ...]:
    out = []
    for i, (uuid, handle) in enumerate(chosen):
        if handle is None:
            break
        out.append(Visible(i, handle, uuid or ""))
    return tuple(out)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _memory(nv: Any, handle: Any) -> tuple[int, int]:
    """(used, total) bytes; prefers the v2 struct, whose ``used`` excludes driver-reserved bytes."""
    if _state.v2 is not False:
        version = getattr(nv, "nvmlMemory_v2", None)
        if version is not None:
            try:
                info = nv.nvmlDeviceGetMemoryInfo(handle, version=version)
                _state.v2 = True
                return int(info.used), int(info.total)
            except Exception:
                _state.v2 = False
        else:
            _state.v2 = False
    info = nv.nvmlDeviceGetMemoryInfo(handle)
    return int(info.used), int(info.total)


def read(device: Visible) -> DeviceMemory:
    """NVML reading of one visible GPU: device-wide used bytes (all processes) and total."""
    module = _state.start()
    used, total = _memory(module, device.handle)
    return DeviceMemory(f"cuda:{device.cuda_index}", used, total, SOURCE)


def process_memory(device: Visible) -> tuple[dict[int, int], int]:
    """GPU memory each compute process holds on ``device``, by pid, and the device's total.

    ``nvmlDeviceGetComputeRunningProcesses``: the driver's own figure per process (its CUDA
    context and every allocation, the caching allocator's cache included). A process whose
    figure NVML does not give (``usedGpuMemory`` None: Windows' WDDM) is left out. The pids
    are the host's: in a container with a PID namespace of its own they match nobody here.
    """
    module = _state.start()
    processes = module.nvmlDeviceGetComputeRunningProcesses(device.handle)
    used = {int(p.pid): int(p.usedGpuMemory) for p in processes if p.usedGpuMemory is not None}
    return used, _memory(module, device.handle)[1]


def read_all() -> list[DeviceMemory]:
    """Readings of every visible GPU; empty when NVML is unavailable."""
    return [read(d) for d in visible()]
