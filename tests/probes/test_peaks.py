"""Nested peaks over one process-wide counter: each scope its own peak, folded into its parent."""

from __future__ import annotations

import os
import select
import signal

import pytest

from resmagic import gpu_scope
from resmagic.probes import host, peaks
from resmagic.probes.peaks import PeakStack
from tests.fakes import FakeNvml, FakeTorch, spike

GiB, MiB = 1 << 30, 1 << 20
Gpu = tuple[FakeTorch, FakeNvml]


@pytest.fixture
def cuda(fake_gpu: Gpu) -> FakeTorch:
    torch, _ = fake_gpu
    torch.cuda.init()
    assert peaks.torch_peaks.depth == 0
    return torch


def test_outer_scope_sees_the_inner_scopes_peak(cuda: FakeTorch) -> None:
    stack = peaks.torch_peaks
    outer = stack.push()
    inner = stack.push()
    spike(cuda.cuda, 0, 2 * GiB)
    assert stack.pop(inner) == {"cuda:0": 2 * GiB, "cuda:1": 0}
    assert stack.pop(outer)["cuda:0"] == 2 * GiB  # the inner reset did not wipe it
    assert stack.depth == 0


def test_outer_peak_before_the_inner_scope_survives_its_reset(cuda: FakeTorch) -> None:
    stack = peaks.torch_peaks
    outer = stack.push()
    spike(cuda.cuda, 1, 3 * GiB)
    inner = stack.push()  # resets the device counter
    cuda.cuda.malloc(1, 1 * GiB)
    assert stack.pop(inner)["cuda:1"] == 1 * GiB  # its own peak, not the earlier 3 GiB
    cuda.cuda.free(1, 1 * GiB)
    assert stack.pop(outer)["cuda:1"] == 3 * GiB


def test_sibling_scopes_each_see_only_their_own_peak(cuda: FakeTorch) -> None:
    stack = peaks.torch_peaks
    outer = stack.push()
    first = stack.push()
    spike(cuda.cuda, 0, 2 * GiB)
    assert stack.pop(first)["cuda:0"] == 2 * GiB
    second = stack.push()
    spike(cuda.cuda, 0, 1 * GiB)
    assert stack.pop(second)["cuda:0"] == 1 * GiB
    assert stack.pop(outer)["cuda:0"] == 2 * GiB


def test_scopes_ending_out_of_order_fold_into_the_one_below(cuda: FakeTorch) -> None:
    # Two threads' scopes on one counter may close in either order.
    stack = peaks.torch_peaks
    bottom = stack.push()
    a = stack.push()
    spike(cuda.cuda, 0, 2 * GiB)
    b = stack.push()
    assert stack.pop(a)["cuda:0"] == 2 * GiB
    assert stack.pop(b)["cuda:0"] == 0
    assert stack.pop(bottom)["cuda:0"] == 2 * GiB
    assert stack.depth == 0


def test_host_peaks_nest_over_vmhwm() -> None:
    if not host.peak_is_exact():
        pytest.skip(f"no exact host peak here: {host.status()}")
    stack = PeakStack(peaks._host_read, host.reset_hwm)  # the real counter, a private stack
    base = host.rss_bytes()
    outer = stack.push()
    inner = stack.push()
    block = bytearray(b"x") * (120 * MiB)
    del block
    inner_peak = stack.pop(inner)["host"]
    later = stack.push()  # resets VmHWM to the current RSS
    later_peak = stack.pop(later)["host"]
    outer_peak = stack.pop(outer)["host"]
    assert inner_peak - base >= 115 * MiB
    assert later_peak - base < 20 * MiB
    assert outer_peak >= inner_peak


def test_peek_sees_an_open_scopes_peak_so_far_through_inner_resets(cuda: FakeTorch) -> None:
    stack = peaks.torch_peaks
    outer = stack.push()
    spike(cuda.cuda, 0, 3 * GiB)
    inner = stack.push()  # resets the counter: the 3 GiB lives in the outer frame now
    spike(cuda.cuda, 0, 1 * GiB)
    assert stack.peek(outer)["cuda:0"] == 3 * GiB
    assert stack.peek(inner)["cuda:0"] == 1 * GiB
    assert stack.depth == 2  # peeking ends nothing
    stack.pop(inner)
    assert stack.pop(outer)["cuda:0"] == 3 * GiB
    assert stack.peek(outer)["cuda:0"] == 3 * GiB  # an ended frame answers its final peak


def test_forked_child_starts_with_no_open_frame_and_a_free_lock() -> None:
    # A rank that notebook_launcher forks from a %%gpu_scope cell inherits the kernel's open
    # frames, and a counter's lock if the sampler held it at that moment (issue 28): its
    # own first scope must neither hang on that lock nor nest in the kernel's frames.
    read_end, write_end = os.pipe()

    def child() -> None:
        try:
            depths = (peaks.host_peaks.depth, peaks.container_peaks.depth)
            with gpu_scope("host") as scope:
                pass
            exact = scope.report is not None and scope.report.device("host").peak_exact
            os.write(write_end, f"{depths[0]} {depths[1]} {exact}".encode())
        finally:
            os._exit(0)

    with gpu_scope("host"):
        assert peaks.host_peaks.depth == 1
        with peaks.host_peaks._lock:  # the sampler's thread, peeking, as the kernel forks
            pid = os.fork()
            if pid == 0:
                child()  # in the child, with the lock as the fork left it
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        said = os.read(read_end, 100).decode() if ready else "the child hung"
    finally:
        os.close(read_end)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert said == f"0 0 {host.peak_is_exact()}"
