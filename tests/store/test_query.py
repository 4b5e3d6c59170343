"""store/query.py: which device row "last time" shows."""

from __future__ import annotations

from resmagic.store.query import last_device

MiB = 1 << 20


def _row(name: str, peak_mib: int, source: str = "exact") -> dict[str, object]:
    return {"name": name, "source": source, "peak_bytes": peak_mib * MiB}


def test_last_time_takes_this_processs_own_rows_the_largest_gpu_else_host() -> None:
    # issue 27 item 2: workers, the container and (issue 28) a launched job's ranks are
    # other processes' memory
    others = [_row("workers", 900), _row("container", 5000), _row("rank 1", 700)]
    assert last_device([_row("host", 300), *others]) == (300 * MiB, "host")
    gpu = [_row("cuda:0", 200), _row("cuda:0", 600, "NVML"), _row("rank 1 cuda:0", 8000)]
    assert last_device([_row("host", 300), *others, *gpu]) == (600 * MiB, "cuda:0.nvml")
    assert last_device(others) is None
