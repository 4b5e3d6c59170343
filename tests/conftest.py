"""Shared fixtures: a real IPython shell with resmagic loaded, and the fake GPU seam."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from resmagic import bus
from resmagic.probes import nvml, torch_cuda
from tests.fakes import FakeNvml, FakeTorch

# The run store is on by default in IPython, in the profile folder: every shell and kernel
# the tests start gets a profile folder of this test session's own, never the real home's.
_IPYTHONDIR = tempfile.mkdtemp(prefix="resmagic-ipythondir-")
os.environ["IPYTHONDIR"] = _IPYTHONDIR
atexit.register(shutil.rmtree, _IPYTHONDIR, True)

# A process started as `cmd &` by a script inherits SIGINT ignored, and Python then installs no
# KeyboardInterrupt handler: the Ctrl-C tests' signals would reach nobody and their cells run
# on (found running `make compat` in the background: 2 tests "did not raise"). Tests run as
# from a terminal, where Ctrl-C raises.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any(item.get_closest_marker("gpu") for item in items) and not _has_cuda():
        skip = pytest.mark.skip(reason="needs a CUDA device; none here")
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def ip() -> Any:
    """One real IPython shell for the session (IPython's own test harness), resmagic loaded."""
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    assert shell is not None
    shell.run_line_magic("load_ext", "resmagic")
    return shell


@pytest.fixture
def fresh_history() -> Iterator[None]:
    bus.clear_history()
    yield
    bus.clear_history()


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeTorch, FakeNvml]]:
    """Swap the torch and NVML seams for fakes: two GPUs, CUDA not yet initialised."""
    torch, nv = FakeTorch(n_devices=2), FakeNvml()
    monkeypatch.setattr(torch_cuda, "backend", torch)
    monkeypatch.setattr(nvml, "backend", nv)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    torch_cuda._totals.clear()
    nvml.reset()
    yield torch, nv
    assert torch.cuda.side_effect_inits == [], "resmagic initialised CUDA as a side effect"
    torch_cuda._totals.clear()
    nvml.reset()


@pytest.fixture
def fd_count() -> Any:
    def count() -> int:
        return len(os.listdir("/proc/self/fd"))

    return count


@pytest.fixture
def in_threads() -> Any:
    """``run(target, n=8)``: call ``target(i)`` in ``n`` real threads released at once; join all."""
    import threading

    def run(target: Any, n: int = 8) -> None:
        barrier = threading.Barrier(n)

        def together(i: int) -> None:
            barrier.wait()
            target(i)

        threads = [threading.Thread(target=together, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return run
