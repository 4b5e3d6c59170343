"""The memory guard in a plain script: a block stopped with MemoryLimitError, not OOM-killed.

The guarded processes run in a real child cgroup v1 with a 300 MiB limit
(:mod:`tests.cgroups`); the same loop without a guard is OOM-killed there, so the guard's
test cannot pass by the loop simply fitting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from resmagic import gpu_scope
from resmagic.errors import MemoryLimitError, OptionError
from resmagic.guard import parse_fraction
from resmagic.probes import cgroup
from tests import cgroups

# 10 MiB at a time, with a pause as a training step would have: far past the 300 MiB limit.
LOOP = """
import time
held = []
for _ in range(60):
    held.append(bytearray(b"x") * (10 << 20))
    time.sleep(0.05)
"""

GUARDED = (
    """
import json, sys
sys.stdin.readline()
from resmagic import gpu_scope
from resmagic.errors import MemoryLimitError
try:
    with gpu_scope("host", guard="60%") as scope:
"""
    + "\n".join(f"        {line}" for line in LOOP.strip().splitlines())
    + """
except MemoryLimitError as exc:
    caught = {"type": type(exc).__name__, "is_memory_error": isinstance(exc, MemoryError),
              "limit": exc.limit_bytes, "used": exc.used_bytes, "text": str(exc)}
report = scope.report
print(json.dumps({"caught": caught, "status": report.status, "error": report.error,
                  "reclaimed": report.reclaimed}))
"""
)


@pytest.fixture
def child_cgroup() -> Iterator[Path]:
    with cgroups.child_cgroup() as path:
        yield path


@pytest.mark.parametrize(("text", "share"), [("90%", 0.9), ("85", 0.85), ("0.5", 0.5), (0.7, 0.7)])
def test_a_share_is_read_as_a_fraction(text: object, share: float) -> None:
    assert parse_fraction(text) == pytest.approx(share)


@pytest.mark.parametrize("text", ["0", "100%", "1", "-5%", "lots", ""])
def test_a_share_outside_0_to_1_is_refused(text: str) -> None:
    with pytest.raises(OptionError, match=r"e\.g\. 90%"):
        parse_fraction(text)


def test_the_loop_without_a_guard_is_oom_killed(child_cgroup: Path) -> None:
    done = cgroups.run_inside(child_cgroup, "import sys; sys.stdin.readline()\n" + LOOP)
    assert done.returncode == -9  # what the guard below prevents


def test_a_guarded_block_stops_with_memory_limit_error_and_the_process_lives(
    child_cgroup: Path,
) -> None:
    done = cgroups.run_inside(child_cgroup, GUARDED)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    caught = seen["caught"]
    assert caught["type"] == "MemoryLimitError"
    assert caught["is_memory_error"]
    assert caught["limit"] == cgroups.LIMIT
    assert 0.6 * cgroups.LIMIT <= caught["used"] < cgroups.LIMIT
    assert "stopped the block" in caught["text"]
    assert "300 MiB limit" in caught["text"]
    assert seen["status"] == "error"
    assert seen["error"].startswith("MemoryLimitError: resmagic's memory guard")
    assert seen["reclaimed"]  # a MemoryError: the out-of-memory path freed the frames


def test_a_guard_with_no_limit_says_it_has_nothing_to_guard() -> None:
    if cgroup.limit_bytes() is not None:
        pytest.skip("this process's cgroup has a memory limit")
    with gpu_scope("host", guard=0.9) as scope:
        pass
    report = scope.report
    assert report is not None
    assert "guard: no container memory limit here, so nothing to guard" in report.notes


def test_memory_limit_error_is_a_memory_error() -> None:
    assert issubclass(MemoryLimitError, MemoryError)
    assert str(MemoryLimitError()) == "stopped by resmagic's memory guard"
