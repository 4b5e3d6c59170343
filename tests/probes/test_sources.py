"""The probe protocol: each source names itself, holds its counter or none, never raises."""

from __future__ import annotations

from resmagic.probes import peaks, sources
from tests.fakes import FakeNvml, FakeTorch

Gpu = tuple[FakeTorch, FakeNvml]


def _every(index: int) -> bool:
    return True


def test_each_probe_names_its_source_and_its_counter(fake_gpu: Gpu) -> None:
    assert [p.source for p in (sources.HOST, sources.ALLOCATOR, sources.NVML)] == [
        "RSS",
        "torch allocator",
        "NVML",
    ]
    assert sources.ALLOCATOR.counter is peaks.torch_peaks
    assert sources.NVML.counter is None  # sampled, never exact
    assert sources.HOST.counter in (peaks.host_peaks, None)


def test_reads_come_only_from_ready_sources(fake_gpu: Gpu) -> None:
    torch, _ = fake_gpu
    assert sources.ALLOCATOR.read(_every) == ([], None)  # CUDA not initialised: no rows
    assert not sources.ALLOCATOR.present()
    nvml_rows, failure = sources.NVML.read(_every)
    assert failure is None
    assert [r.name for r in nvml_rows] == ["cuda:0", "cuda:1"]
    torch.cuda.init()
    rows, _ = sources.ALLOCATOR.read(lambda index: index == 1)
    assert [r.name for r in rows] == ["cuda:1"]


def test_a_failing_driver_gives_no_rows_and_says_why(fake_gpu: Gpu) -> None:
    _, nv = fake_gpu
    sources.NVML.read(_every)  # NVML started and mapped
    nv.lost = True
    rows, failure = sources.NVML.read(_every)
    assert rows == []
    assert failure == "NVML: reading failed (NVMLError: GPU is lost)"
