"""torch allocator probe through the fake CUDA seam: reads per device, never initialises CUDA."""

from __future__ import annotations

import sys

import pytest

from resmagic.probes import torch_cuda
from resmagic.probes.reading import DeviceMemory
from tests.fakes import FakeNvml, FakeOutOfMemoryError, FakeTorch, spike

GiB = 1 << 30
Gpu = tuple[FakeTorch, FakeNvml]


def test_never_initialises_cuda_as_a_side_effect(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    assert torch_cuda.read_all() == []
    assert torch_cuda.peaks() == {}
    torch_cuda.reset_peaks()
    assert torch_cuda.empty_cache() is False
    assert torch_cuda.synchronize() is False
    assert torch_cuda.uuid(0) is None
    assert torch_cuda.device_count() == 0
    assert torch_cuda.visible_count() == 0  # torch.cuda.device_count() may call cuInit
    assert not torch_cuda.ready()
    assert not torch.cuda.initialized
    assert torch.cuda.side_effect_inits == []
    assert torch.cuda.synchronized == []
    assert torch.cuda.empty_cache_calls == 0


def test_ready_false_when_torch_not_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_cuda, "backend", None)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert not torch_cuda.ready()
    assert torch_cuda.read_all() == []
    assert torch_cuda.visible_count() == 0
    assert torch_cuda.is_oom(MemoryError()) is False
    assert str(torch_cuda.status()) == "torch allocator: torch not imported"
    assert "torch" not in sys.modules  # asking did not import it


def test_ready_false_until_cuda_is_initialised(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    status = torch_cuda.status()
    assert not status.available
    assert "CUDA not initialised yet" in status.detail
    torch.cuda.init()
    assert torch_cuda.ready()
    assert str(torch_cuda.status()) == "torch allocator: 2 devices, exact peaks"


def test_status_says_a_cpu_only_build_has_no_cuda(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    torch.backends.cuda.is_built = lambda: False
    assert torch_cuda.status().detail == "this torch build has no CUDA (CPU-only)"


def test_reads_allocated_reserved_and_peak_per_device(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    torch.cuda.init()
    torch.cuda.malloc(0, 3 * GiB)
    torch.cuda.free(0, 1 * GiB)
    torch.cuda.malloc(1, 1 * GiB)
    assert torch_cuda.read_all() == [
        DeviceMemory(
            "cuda:0",
            2 * GiB,
            16 * GiB,
            "torch allocator",
            reserved_bytes=3 * GiB,
            peak_bytes=3 * GiB,
        ),
        DeviceMemory(
            "cuda:1",
            1 * GiB,
            16 * GiB,
            "torch allocator",
            reserved_bytes=1 * GiB,
            peak_bytes=1 * GiB,
        ),
    ]
    assert torch_cuda.peaks() == {"cuda:0": 3 * GiB, "cuda:1": 1 * GiB}


def test_reset_peaks_resets_every_device_to_its_current_value(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    torch.cuda.init()
    torch.cuda.malloc(0, 3 * GiB)
    torch.cuda.free(0, 2 * GiB)
    torch.cuda.malloc(1, 2 * GiB)
    torch_cuda.reset_peaks()
    assert torch_cuda.peaks() == {"cuda:0": 1 * GiB, "cuda:1": 2 * GiB}


def test_empty_cache_and_synchronize_once_initialised(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    torch.cuda.init()
    spike(torch.cuda, 0, 2 * GiB)
    assert torch_cuda.empty_cache() is True
    assert torch_cuda.read(0).reserved_bytes == 0
    assert torch_cuda.synchronize() is True
    assert torch.cuda.synchronized == [0, 1]  # every device, each by its index


def test_uuid_is_spelled_as_nvml_spells_it(fake_gpu: Gpu) -> None:
    torch, nv = fake_gpu
    torch.cuda.init()
    assert torch_cuda.uuid(1) == nv.devices[1].uuid
    assert torch_cuda.uuid(1).startswith("GPU-")  # type: ignore[union-attr]


def test_is_oom_knows_torch_out_of_memory_errors(fake_gpu: Gpu) -> None:
    assert torch_cuda.is_oom(FakeOutOfMemoryError("CUDA out of memory"))
    assert torch_cuda.is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not torch_cuda.is_oom(RuntimeError("shape mismatch"))
    assert not torch_cuda.is_oom(MemoryError())  # host OOM is gpu_scope's business


def test_real_cpu_torch_reports_no_device_and_stays_uninitialised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this torch has CUDA: see tests/scopes/test_gpu_real.py")
    monkeypatch.setattr(torch_cuda, "backend", None)
    from resmagic import gpu_scope

    with gpu_scope() as scope:
        torch.ones(1000)
    assert scope.report is not None
    assert [d.name for d in scope.report.devices] == ["host"]
    assert any(n.startswith("torch allocator: ") for n in scope.report.notes)
    assert not torch.cuda.is_initialized()
    assert torch_cuda.read_all() == []
    assert torch_cuda.synchronize() is False
