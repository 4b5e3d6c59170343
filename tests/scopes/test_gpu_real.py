"""gpu_scope, timed and the probes on real CUDA hardware; skipped where there is no GPU.

tests/conftest.py skips every ``gpu``-marked test when ``torch.cuda.is_available()`` is
False, so these run only on a machine with a CUDA device.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from typing import Any

import pytest

from resmagic import gpu_scope, timed
from resmagic.probes import nvml, torch_cuda
from resmagic.report import GpuReport

pytestmark = [pytest.mark.gpu, pytest.mark.usefixtures("fresh_history")]

MiB = 1 << 20


@pytest.fixture
def torch() -> Any:
    torch = pytest.importorskip("torch")
    torch.cuda.init()
    torch.cuda.synchronize(0)
    gc.collect()
    torch.cuda.empty_cache()
    return torch


def _report(scope: gpu_scope) -> GpuReport:
    assert scope.report is not None
    return scope.report


def test_scope_does_not_initialise_cuda() -> None:
    code = (
        "import torch\n"
        "from resmagic import gpu_scope, timed\n"
        "with timed(), gpu_scope() as s:\n"
        "    pass\n"
        "print(torch.cuda.is_initialized(), [d.source for d in s.report.devices])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    initialised, sources = out.stdout.strip().split(" ", 1)
    assert initialised == "False"
    assert "torch allocator" not in sources


def test_allocator_peak_of_a_transient_tensor_is_exact(torch: Any) -> None:
    with gpu_scope(0) as scope:
        block = torch.empty(256 * MiB, dtype=torch.uint8, device="cuda:0")
        del block
    row = _report(scope).device("cuda:0", "torch allocator")
    assert row.peak_exact
    assert row.peak_bytes - row.before_bytes >= 256 * MiB
    assert row.after_bytes == row.before_bytes
    assert torch.cuda.memory_reserved(0) == torch.cuda.memory_allocated(0)  # cache emptied


def test_outer_peak_survives_an_inner_scopes_reset(torch: Any) -> None:
    with gpu_scope(0) as outer:
        block = torch.empty(256 * MiB, dtype=torch.uint8, device="cuda:0")
        del block
        with gpu_scope(0) as inner:  # resets the device's peak counter
            pass
    outer_row = _report(outer).device("cuda:0", "torch allocator")
    inner_row = _report(inner).device("cuda:0", "torch allocator")
    assert outer_row.peak_bytes - outer_row.before_bytes >= 256 * MiB
    assert inner_row.peak_bytes - inner_row.before_bytes < 256 * MiB


def test_nvml_and_torch_agree_on_which_gpu_is_which(torch: Any) -> None:
    if not nvml.status().available:
        pytest.skip(str(nvml.status()))
    assert [d.uuid for d in nvml.visible()] == [
        torch_cuda.uuid(i) for i in range(torch.cuda.device_count())
    ]
    with gpu_scope() as scope:
        pass
    names = {(d.name, d.source) for d in _report(scope).devices}
    assert ("cuda:0", "torch allocator") in names
    assert ("cuda:0", "NVML") in names


def test_timed_synchronises_queued_kernels(torch: Any) -> None:
    a = torch.randn(2048, 2048, device="cuda:0")
    with timed("matmul") as t:
        for _ in range(10):
            a = a @ a
    assert t.report is not None
    assert t.report.cuda_synced


def _fail_holding(torch: Any, n: int) -> Any:
    held = torch.empty(n, dtype=torch.uint8, device="cuda:0")  # a local of the failing frame
    total = torch.cuda.get_device_properties(0).total_memory
    torch.empty(total * 2, dtype=torch.uint8, device="cuda:0")  # raises OutOfMemoryError
    return held


@pytest.mark.parametrize(("reclaim", "freed"), [("oom", True), ("never", False)])
def test_reclaim_after_cuda_out_of_memory(torch: Any, reclaim: str, freed: bool) -> None:
    base = torch.cuda.memory_allocated(0)
    kept: BaseException | None = None
    scope = gpu_scope(0, reclaim=reclaim)  # type: ignore[arg-type]
    try:
        with scope:
            _fail_holding(torch, 512 * MiB)
    except torch.cuda.OutOfMemoryError as exc:
        kept = exc  # as IPython keeps sys.last_value
    assert kept is not None
    gc.collect()
    held = torch.cuda.memory_allocated(0) - base
    del kept
    gc.collect()
    assert _report(scope).reclaimed is freed
    if freed:
        assert held < 16 * MiB
    else:
        assert held >= 512 * MiB
