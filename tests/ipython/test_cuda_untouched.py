"""With torch imported, no magic, command or watched cell asks torch.cuda more than "is it up?".

A forking launcher (accelerate's ``notebook_launcher``) fails once the kernel has initialised
CUDA (issue 28; accelerate#3925). ``torch.cuda.is_initialized()`` alone cannot prove it here:
on a CPU build it stays False whatever is called, and on a CUDA build ``is_available()`` or a
``device_count()`` that falls back from NVML call ``cuInit``, which breaks a fork's CUDA
without setting torch's flag. So every function of ``torch.cuda`` is recorded (the real
functions still run) and the only one resmagic may call before CUDA is up is
``is_initialized``.
"""

from __future__ import annotations

import functools
import inspect
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("fresh_history")

SAFE = {"is_initialized"}


@pytest.fixture
def cuda_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every torch.cuda function resmagic calls from now on, by name, counted."""
    assert not torch.cuda.is_initialized()
    calls: Counter[str] = Counter()
    for module in (torch.cuda, torch.cuda.memory):
        for name, value in list(vars(module).items()):
            if inspect.isfunction(value) and not name.startswith("__"):
                monkeypatch.setattr(module, name, _recorded(value, name, calls))
    yield calls
    assert not torch.cuda.is_initialized()


def _recorded(func: Callable[..., Any], name: str, calls: Counter[str]) -> Callable[..., Any]:
    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return func(*args, **kwargs)

    return call


def test_every_magic_asks_only_whether_cuda_is_up(
    ip: Any, cuda_calls: Counter[str], tmp_path: Path
) -> None:
    cells = [
        ("gpu_scope", "", "x = bytearray(1 << 20)"),
        ("gpu_scope", "--gc --reclaim always -q", "raise ValueError('x')"),
        ("gpu_scope", "host --no-panel", "pass"),
        ("timed", "train", "sum(range(1000))"),
        ("experiment_log", str(tmp_path / "a.log"), "pass"),
        ("db_transaction", str(tmp_path / "a.db"), "pass"),
    ]
    for magic, line, body in cells:
        ip.run_cell(f"%%{magic} {line}\n{body}")
    ip.run_cell("%%timed\n%%gpu_scope\ny = bytearray(1 << 20)")
    assert set(cuda_calls) <= SAFE, cuda_calls
    assert cuda_calls["is_initialized"] > 0  # the recording sees resmagic's calls


def test_every_command_and_watched_cell_asks_only_whether_cuda_is_up(
    ip: Any, cuda_calls: Counter[str]
) -> None:
    for command in ("status", "history", "runs", "timings", "who", "config", "panel"):
        ip.run_line_magic("resmagic", command)
    ip.run_line_magic("resmagic", "watch on --no-panel")
    try:
        ip.run_cell("z = bytearray(1 << 20)")
        ip.run_cell("raise KeyError(1)")
    finally:
        ip.run_line_magic("resmagic", "watch off")
        ip.run_cell("pass")
    assert set(cuda_calls) <= SAFE, cuda_calls


def test_naming_a_device_asks_only_whether_cuda_is_up(ip: Any, cuda_calls: Counter[str]) -> None:
    ip.run_cell("%%gpu_scope cuda:0\npass")  # a UsageError here: this machine has no GPU
    assert set(cuda_calls) <= SAFE, cuda_calls
