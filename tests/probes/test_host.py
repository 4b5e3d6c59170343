"""Host probe: RSS as the kernel counts it, and the exact peak from VmHWM, reset per scope."""

from __future__ import annotations

import gc
import os
import sys

import pytest

from resmagic import gpu_scope
from resmagic.probes import host

MiB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _touched(n: int) -> bytearray:
    """``n`` bytes that are really resident: every page written."""
    return bytearray(b"x") * n


def test_rss_bytes_agrees_with_psutil() -> None:
    psutil = pytest.importorskip("psutil")
    ours, theirs = host.rss_bytes(), psutil.Process().memory_info().rss
    assert abs(ours - theirs) < max(theirs // 20, 4 * MiB)


def test_rss_bytes_grows_by_what_is_touched() -> None:
    gc.collect()
    before = host.rss_bytes()
    block = _touched(100 * MiB)
    grown = host.rss_bytes() - before
    del block
    assert 95 * MiB <= grown <= 110 * MiB


def test_read_is_the_host_row_with_source_and_total() -> None:
    reading = host.read()
    assert (reading.name, reading.source) == ("host", "RSS")
    assert reading.total_bytes is not None
    assert reading.used_bytes < reading.total_bytes
    if host.peak_is_exact():
        assert reading.peak_bytes is not None
        assert reading.peak_bytes >= reading.used_bytes


def test_total_bytes_is_at_most_physical_ram() -> None:
    psutil = pytest.importorskip("psutil")
    assert 0 < host.total_bytes() <= psutil.virtual_memory().total


@linux_only
def test_status_says_whether_the_peak_is_exact() -> None:
    status = host.status()
    assert status.available
    if host.peak_is_exact():
        assert "exact peak (VmHWM)" in status.detail
    else:
        assert "peak sampled" in status.detail


@pytest.fixture
def exact_peak() -> None:
    if not host.peak_is_exact():
        pytest.skip(f"no exact host peak here: {host.status()}")


@pytest.mark.usefixtures("exact_peak", "fresh_history")
class TestExactPeak:
    def test_host_peak_of_a_200_mib_transient_is_within_5_percent(self) -> None:
        gc.collect()
        with gpu_scope("host") as scope:
            block = _touched(200 * MiB)
            del block
        assert scope.report is not None
        row = scope.report.device("host")
        assert row.peak_exact
        rise = row.peak_bytes - row.before_bytes
        assert abs(rise - 200 * MiB) <= 10 * MiB, f"peak rose {rise / MiB:.1f} MiB"
        assert row.after_bytes - row.before_bytes < 10 * MiB  # it was transient

    def test_reset_hwm_brings_the_peak_down_to_the_current_rss(self) -> None:
        block = _touched(150 * MiB)
        del block
        high = host.hwm_bytes()
        assert high is not None
        assert high >= host.rss_bytes() + 140 * MiB
        assert host.reset_hwm()
        low = host.hwm_bytes()
        assert low is not None
        assert low <= host.rss_bytes() + 4 * MiB
        assert low < high - 140 * MiB


@linux_only
def test_readings_after_fork_are_the_childs_own() -> None:
    """The /proc descriptors are reopened in a child: it must not read its parent's figures."""
    host.rss_bytes()  # the parent's descriptors are open now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report (ours, fresh) RSS and whether the peak reset, then exit
        try:
            os.close(read_end)
            block = _touched(64 * MiB)
            with open("/proc/self/statm") as f:
                fresh = int(f.read().split()[1]) * PAGE
            ours = host.rss_bytes()
            reset = host.reset_hwm() if host.peak_is_exact() else True
            os.write(write_end, f"{ours} {fresh} {int(reset)} {len(block)}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    ours, fresh, reset_flag, _ = (int(x) for x in answer.split())
    assert abs(ours - fresh) < 4 * MiB, "the child read its parent's RSS"
    assert reset_flag
    assert host.rss_bytes() > 0  # the parent's own readings still work
