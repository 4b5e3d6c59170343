"""NVML probe through the fake seam: lazy init, words when unavailable, CUDA's device numbering."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from resmagic.probes import nvml
from resmagic.probes.reading import DeviceMemory, ProbeStatus
from tests.fakes import FakeNvml, FakeNvmlWithMig, FakeTorch

GiB, MiB = 1 << 30, 1 << 20
Gpu = tuple[FakeTorch, FakeNvml]
UUIDS = [f"GPU-{i:08x}-aaaa-bbbb-cccc-{i:012x}" for i in range(3)]


@pytest.fixture
def use(fake_gpu: Gpu, monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeNvml], FakeNvml]:
    """Install another fake NVML (the fake_gpu fixture restores the state afterwards)."""

    def install(nv: FakeNvml) -> FakeNvml:
        monkeypatch.setattr(nvml, "backend", nv)
        nvml.reset()
        return nv

    return install


def _uuids() -> list[str]:
    return [d.uuid for d in nvml.visible()]


def test_lazy_init_once_from_many_threads(fake_gpu: Gpu, in_threads: Any) -> None:
    _, nv = fake_gpu
    assert nv.inits == 0  # importing and resetting the probe does not touch NVML

    def use_it(_: int) -> None:
        for _ in range(20):
            nvml.status()
            nvml.read_all()

    in_threads(use_it)
    assert nv.inits == 1
    assert nvml.status() == ProbeStatus("NVML", True, "2 visible devices, device-wide, sampled")


def test_graceful_nvml_unavailable_with_the_reason(use: Callable[[FakeNvml], FakeNvml]) -> None:
    use(FakeNvml(fail_init=True))
    assert str(nvml.status()) == "NVML unavailable: NVML Shared Library Not Found"
    assert not nvml.status().available
    assert nvml.visible() == ()
    assert nvml.read_all() == []


def test_every_gpu_in_order_without_cuda_visible_devices(fake_gpu: Gpu) -> None:
    assert [(d.cuda_index, d.uuid) for d in nvml.visible()] == [(0, UUIDS[0]), (1, UUIDS[1])]
    assert [d.name for d in nvml.read_all()] == ["cuda:0", "cuda:1"]


@pytest.mark.parametrize(
    ("spec", "chosen"),
    [
        ("1,0", [1, 0]),
        ("2", [2]),
        (" 2 , 0 ", [2, 0]),
        ("0,7,1", [0]),  # CUDA stops at the first entry it cannot use
        ("1,1", [1]),  # and refuses a duplicate
        ("-1", []),
        ("", []),  # set but empty: no GPU at all
        (f"{UUIDS[2]},{UUIDS[0]}", [2, 0]),
        ("GPU-00000001", [1]),  # a unique prefix
        ("00000002-aaaa", [2]),  # without the GPU- part
        ("GPU-0000000", []),  # ambiguous: matches every GPU
        (f"{UUIDS[1]},GPU-ffffffff", [1]),
    ],
)
def test_cuda_visible_devices_integers_and_uuids(
    use: Callable[[FakeNvml], FakeNvml],
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    chosen: list[int],
) -> None:
    use(FakeNvml(uuids=UUIDS))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", spec)
    assert _uuids() == [UUIDS[i] for i in chosen]
    assert [d.cuda_index for d in nvml.visible()] == list(range(len(chosen)))


def test_empty_cuda_visible_devices_hides_a_single_gpu(
    use: Callable[[FakeNvml], FakeNvml], monkeypatch: pytest.MonkeyPatch
) -> None:
    use(FakeNvml(uuids=UUIDS[:1]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert nvml.visible() == ()


def test_cuda_visible_devices_mig_ids(
    use: Callable[[FakeNvml], FakeNvml], monkeypatch: pytest.MonkeyPatch
) -> None:
    mig = ["MIG-11111111-2222-3333-4444-555555555555", "MIG-66666666-7777-8888-9999-000000000000"]
    nv = use(FakeNvmlWithMig(mig, uuids=UUIDS[:1]))
    assert isinstance(nv, FakeNvmlWithMig)
    nv.mig[1].used = 3 * GiB
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mig[1])
    assert _uuids() == [mig[1]]
    assert nvml.read_all() == [DeviceMemory("cuda:0", 3 * GiB, 8 * GiB, "NVML")]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{mig[0]},MIG-unknown,{mig[1]}")
    assert _uuids() == [mig[0]]


def test_mapping_follows_a_change_of_cuda_visible_devices(
    fake_gpu: Gpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(nvml.visible()) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert _uuids() == [UUIDS[1]]


def test_once_cuda_is_initialised_devices_match_by_torch_uuid(
    fake_gpu: Gpu, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch, _ = fake_gpu
    # torch numbers the GPUs fastest first, NVML in PCI order: only the UUIDs agree.
    torch.cuda.devices[0].uuid, torch.cuda.devices[1].uuid = UUIDS[1], UUIDS[0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert _uuids() == [UUIDS[0], UUIDS[1]]  # before init: read from the variable
    torch.cuda.init()
    assert _uuids() == [UUIDS[1], UUIDS[0]]
    assert torch.cuda.side_effect_inits == []


def test_v2_memory_info_excludes_driver_reserved_memory(
    use: Callable[[FakeNvml], FakeNvml],
) -> None:
    nv = use(FakeNvml(v2=True))
    nv.devices[0].used = 1 * GiB
    assert nvml.read_all()[0] == DeviceMemory("cuda:0", 1 * GiB, 16 * GiB, "NVML")


def test_v1_memory_info_where_the_driver_has_no_v2(use: Callable[[FakeNvml], FakeNvml]) -> None:
    nv = use(FakeNvml(v2=False))
    nv.devices[0].used = 1 * GiB
    assert nvml.read_all()[0].used_bytes == 1 * GiB + nv.devices[0].reserved


@pytest.mark.skipif(
    os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/dxg"),
    reason="this machine has an NVIDIA driver",
)
def test_no_proc_driver_nvidia_skips_nvml_without_importing_it() -> None:
    code = (
        "import sys\n"
        "from resmagic.probes import nvml\n"
        "print(nvml.status())\n"
        "print(nvml.read_all(), 'pynvml' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.splitlines() == [
        "NVML unavailable: no NVIDIA driver loaded (/proc/driver/nvidia is missing)",
        "[] False",
    ]
