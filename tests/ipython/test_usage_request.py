"""The control channel's ``usage_request`` in a real kernel: ipykernel's keys plus ``resmagic``.

The GPU is the probe seam's fake; the cell that runs while the request is answered waits for
a file the test writes, so "during the cell" is a fact, not a timing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cgroups import child_cgroup, move
from tests.fakes import FAKE_GPU_IN_KERNEL, GiB
from tests.kernel import Kernel

pytestmark = pytest.mark.kernel

USUAL = {"hostname", "pid", "kernel_cpu", "kernel_memory", "cpu_count", "host_virtual_memory"}

BUSY = """
import pathlib, time
fake.cuda.malloc(0, 3 << 30); fake.cuda.free(0, 2 << 30)  # 4 GiB peak, 2 GiB held
nv.devices[0].used = 5 << 30
pathlib.Path({ready!r}).write_text("allocated")
deadline = time.monotonic() + 120
while not pathlib.Path({release!r}).exists() and time.monotonic() < deadline:
    time.sleep(0.01)
"""


def usage(kernel: Kernel) -> dict[str, Any]:
    """Send ``usage_request`` on the control channel; the content of its reply."""
    request = kernel.kc.session.msg("usage_request", {})
    kernel.kc.control_channel.send(request)
    while True:
        reply = kernel.kc.get_control_msg(timeout=30)
        if reply["parent_header"].get("msg_id") == request["header"]["msg_id"]:
            assert reply["msg_type"] == "usage_reply"
            return dict(reply["content"])


def wait_for(path: Path) -> None:
    for _ in range(12000):  # a bound, not a timing: the cell writes it within a second
        if path.exists():
            return
        time.sleep(0.01)
    pytest.fail(f"{path} never appeared")


@pytest.fixture
def kernel() -> Iterator[Kernel]:
    """A kernel with resmagic loaded and asked once (a frontend asks at once, too)."""
    with Kernel() as k:
        assert k.run("%load_ext resmagic").status == "ok"
        usage(k)
        yield k


LOADED = "'resmagic.ipython.usage_request' in __import__('sys').modules"


def test_cells_pay_nothing_until_something_asks() -> None:
    with Kernel() as k:
        k.run("%load_ext resmagic")
        count = "len(get_ipython().events.callbacks['pre_run_cell'])"
        before = k.value(count)
        assert k.value(LOADED) is False  # issue 26: the reply loads with the first request
        assert "resmagic" in usage(k)
        assert k.value(count) == before + 1
        assert k.value(LOADED) is True


def test_a_handler_that_cannot_load_leaves_ipykernels_reply() -> None:
    with Kernel() as k:
        k.run("%load_ext resmagic")
        k.run("import sys; sys.modules['resmagic.ipython.usage_request'] = None")  # import fails
        for _ in range(2):
            reply = usage(k)
            assert "resmagic" not in reply
            assert reply.keys() >= USUAL


def test_unload_before_any_request_puts_ipykernels_handler_back() -> None:
    with Kernel() as k:
        k.run("%load_ext resmagic")
        k.run("%unload_ext resmagic")
        check = "k = get_ipython().kernel; k.control_handlers['usage_request'] == k.usage_request"
        assert k.value(check) is True
        reply = usage(k)
        assert "resmagic" not in reply
        assert reply.keys() >= USUAL
        assert k.value(LOADED) is False


def test_the_reply_carries_the_running_cells_gpu_and_peak_during_the_cell(
    kernel: Kernel, tmp_path: Path
) -> None:
    assert kernel.run(FAKE_GPU_IN_KERNEL).status == "ok"
    ready, release = tmp_path / "ready", tmp_path / "release"
    msg_id = kernel.start(BUSY.format(ready=str(ready), release=str(release)))
    wait_for(ready)
    during = usage(kernel)
    release.write_text("go")  # the cell cannot have ended before this line
    done = kernel.collect(msg_id)
    assert done.status == "ok"
    after = usage(kernel)["resmagic"]

    assert during.keys() >= USUAL
    assert isinstance(during["kernel_memory"], int)  # bytes, as ipykernel sends them
    assert during["host_virtual_memory"]["total"] > 0
    assert during["pid"] == kernel.km.provisioner.process.pid  # type: ignore[union-attr]
    block = during["resmagic"]
    assert block["schema"] == 1
    assert block["cell"] == {"number": done.reply["content"]["execution_count"], "running": True}
    (gpu,) = block["devices"]
    assert gpu == {
        "name": "cuda:0",
        "allocated": 2 * GiB,
        "reserved": 4 * GiB,
        "total": 16 * GiB,
        "peak": 4 * GiB,  # this cell's, exact, while it runs
        "nvml_used": 5 * GiB,
        "nvml_total": 16 * GiB,
    }
    assert block["host"]["rss"] > 0
    assert block["host"]["total"] > 0

    assert after["cell"] == {"number": block["cell"]["number"], "running": False}
    assert after["devices"][0]["peak"] == 4 * GiB  # the last cell's peak stays shown


def test_a_new_cell_starts_its_own_peak(kernel: Kernel) -> None:
    kernel.run(FAKE_GPU_IN_KERNEL)
    kernel.run("fake.cuda.malloc(0, 3 << 30); fake.cuda.free(0, 3 << 30)")
    assert usage(kernel)["resmagic"]["devices"][0]["peak"] == 4 * GiB
    kernel.run("x = 1")
    assert usage(kernel)["resmagic"]["devices"][0]["peak"] == 1 * GiB


NESTED = """%%gpu_scope --no-panel -q
from resmagic import gpu_scope
with gpu_scope():
    fake.cuda.malloc(0, 3 << 30); fake.cuda.free(0, 3 << 30)
with gpu_scope():  # resets the device's counter after the spike
    pass"""


def test_a_cells_peak_counts_scopes_still_open_when_the_cell_ends(kernel: Kernel) -> None:
    kernel.run(FAKE_GPU_IN_KERNEL)
    assert kernel.run(NESTED).status == "ok"
    assert usage(kernel)["resmagic"]["devices"][0]["peak"] == 4 * GiB


def test_the_handler_never_initialises_cuda(kernel: Kernel) -> None:
    code = FAKE_GPU_IN_KERNEL.replace("fake.cuda.init()", "").replace(
        "fake.cuda.malloc(0, 1 << 30)", ""
    )
    kernel.run(code)
    gpu = usage(kernel)["resmagic"]
    assert kernel.value("(fake.cuda.initialized, fake.cuda.side_effect_inits)") == (False, [])
    (device,) = gpu["devices"]
    assert device["allocated"] is None
    assert device["peak"] is None
    assert device["nvml_used"] == 2 * GiB
    assert any("CUDA not initialised" in note for note in gpu["notes"])


def test_unload_puts_ipykernels_handler_back(kernel: Kernel) -> None:
    assert "resmagic" in usage(kernel)
    assert "status bar: answering usage_request" in kernel.run("%resmagic status").stdout
    kernel.run("%unload_ext resmagic")
    reply = usage(kernel)
    assert "resmagic" not in reply
    assert reply.keys() >= USUAL
    check = "k = get_ipython().kernel; k.control_handlers['usage_request'] == k.usage_request"
    assert kernel.value(check) is True


@pytest.fixture
def limited_kernel() -> Iterator[tuple[Kernel, Path]]:
    """A kernel moved into a child cgroup with a 2 GiB limit before resmagic loads."""
    with child_cgroup(2 * GiB) as path, Kernel() as k:
        move(path, k.value("__import__('os').getpid()"))
        k.run("%load_ext resmagic")
        yield k, path


def test_the_container_row_is_the_kernels_cgroup(limited_kernel: tuple[Kernel, Path]) -> None:
    kernel, path = limited_kernel
    container = usage(kernel)["resmagic"]["container"]
    assert container["cgroup"] == str(path)
    assert container["limit"] == 2 * GiB
    assert 0 < container["usage"] <= 2 * GiB
