"""``make gpu-check`` (benchmarks/gpu_check.py): how it behaves where there is no GPU, and
how it reads a run, so the one call on the GPU machine is not its first test."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
GiB = 1 << 30


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _module()


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0() -> None:
    if gpu_check.no_gpu_reason() is None:
        pytest.skip("a GPU is here: `make gpu-check` runs the real check")
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gpu-check: no GPU here: ")


def _run(peak_gib: float, after_oom: int) -> dict[str, Any]:
    allocator = {"source": "torch allocator", "before": GiB, "exact": True}
    gpu_row = {**allocator, "name": "cuda:0", "peak": int(GiB + peak_gib * GiB), "after": GiB}
    nvml_row = {"name": "cuda:0", "source": "NVML", "before": 0, "peak": 0, "after": 0}
    reports = [
        {"scope": "gpu_scope", "status": "ok", "rows": [gpu_row, {**nvml_row, "exact": False}]},
        {"scope": "timed", "status": "ok", "label": "synced", "wall": 0.9},
        {"scope": "timed", "status": "ok", "label": "unsynced", "wall": 0.01},
    ]
    return {
        "load_ext initialises no CUDA": {"status": "ok", "shown": "False\n"},
        "OOM cell": {"status": "error", "shown": "OutOfMemoryError: CUDA out of memory"},
        "facts": {
            "reports": reports,
            "allocated_after_oom": after_oom,
            "before_oom": 0,
            "nvml_sample_us": 42.0,
        },
        "cost_us": {"bare": 80.0, "%%timed": 150.0},
    }


def test_a_good_run_reads_as_passing_with_its_numbers() -> None:
    rows = gpu_check.verdicts(_run(peak_gib=4.0, after_oom=0))
    assert [r for r in rows if r[1] == "**FAIL**"] == []
    measured = dict((r[0], r[2]) for r in rows)
    assert measured["allocator row, exact peak of 4 GiB"] == "4.0000 GiB above before"
    assert measured["per cell: %%timed"] == "150.0 µs"


@pytest.mark.parametrize(("peak_gib", "after_oom"), [(3.5, 0), (4.0, 1 << 30)])
def test_a_wrong_peak_or_memory_kept_after_an_oom_fails(peak_gib: float, after_oom: int) -> None:
    rows = gpu_check.verdicts(_run(peak_gib, after_oom))
    assert any(r[1] == "**FAIL**" for r in rows)


def test_results_table_names_the_machine(tmp_path: Path) -> None:
    gpu_check.write_results(tmp_path, {"GPU": "H200"}, [("a check", "pass", "1 µs")])
    text = (tmp_path / "results.md").read_text()
    assert "- GPU: H200" in text
    assert "| a check | pass | 1 µs |" in text
