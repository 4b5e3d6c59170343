"""The process's own memory cgroup, read from a real cgroup v1 made for the test.

Each test makes a child of this process's own memory cgroup with a 300 MiB limit, runs a
real process inside it, and removes the cgroup afterwards. Skipped where the machine has no
writable cgroup v1 memory hierarchy (cgroup v2 is tested in a VM, not here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from resmagic.probes import cgroup

MiB = 1 << 20
LIMIT = 300 * MiB

READ = """
import json, sys
sys.stdin.readline()  # moved into the cgroup by now
from resmagic.probes import cgroup, host
g = cgroup.own()
print(json.dumps({"path": g.path if g else None, "version": g.version if g else None,
                  "limit": cgroup.limit_bytes(g), "total": host.total_bytes(),
                  "status": str(cgroup.status())}))
"""

GREEDY = """
import sys
sys.stdin.readline()
held = [bytearray(b"x") * (10 << 20) for _ in range(60)]  # 600 MiB into a 300 MiB cgroup
"""


@pytest.fixture
def child_cgroup() -> Iterator[Path]:
    group = cgroup.own()
    if group is None or group.version != 1 or not os.access(group.path, os.W_OK):
        pytest.skip("needs a writable cgroup v1 memory hierarchy (root on this machine)")
    path = Path(group.path) / f"resmagic-test-{os.getpid()}"
    path.mkdir()
    try:
        (path / "memory.limit_in_bytes").write_text(str(LIMIT))
        yield path
    finally:
        path.rmdir()


def _run_inside(path: Path, code: str) -> subprocess.CompletedProcess[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    (path / "cgroup.procs").write_text(str(process.pid))
    out, err = process.communicate("go\n", timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_a_process_in_a_child_cgroup_sees_its_limit_as_the_host_total(child_cgroup: Path) -> None:
    done = _run_inside(child_cgroup, READ)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["path"] == str(child_cgroup)
    assert seen["version"] == 1
    assert seen["limit"] == LIMIT
    assert seen["total"] == LIMIT  # not the machine's RAM (v1 read only the root's files)
    assert "limit 300 MiB" in seen["status"]


def test_the_oom_kill_counter_counts_a_real_kill(child_cgroup: Path) -> None:
    mine = cgroup.own()
    assert mine is not None
    group = cgroup.Cgroup(1, str(child_cgroup), mine.mount)
    assert cgroup.oom_kills(group) == 0
    done = _run_inside(child_cgroup, GREEDY)
    assert done.returncode == -9  # SIGKILL from the OOM killer
    assert cgroup.oom_kills(group) == 1
    peak = cgroup.peak_bytes(group)
    assert peak is not None
    assert peak > LIMIT * 0.9
    usage = cgroup.usage_bytes(group)
    working = cgroup.working_set_bytes(group)
    assert usage is not None
    assert working is not None
    assert 0 <= working <= usage


def test_no_cgroup_files_means_no_readings(tmp_path: Path) -> None:
    # A fixture tree, the named fallback: a /proc without cgroup files (macOS, a sandbox).
    assert cgroup.own(str(tmp_path)) is None
    (tmp_path / "cgroup").write_text("4:memory:/nowhere\n")
    (tmp_path / "mountinfo").write_text("")  # no memory hierarchy mounted
    assert cgroup.own(str(tmp_path)) is None


IN_A_SCOPE = """
import subprocess, sys
sys.stdin.readline()
from resmagic import gpu_scope
greedy = "held = [bytearray(b'x') * (10 << 20) for _ in range(60)]"
with gpu_scope("host") as scope:
    killed = subprocess.run([sys.executable, "-c", greedy]).returncode
print(killed)
print("\\n".join(scope.report.notes))
"""


def test_a_block_whose_worker_the_oom_killer_took_says_so(child_cgroup: Path) -> None:
    done = _run_inside(child_cgroup, IN_A_SCOPE)
    assert done.returncode == 0, done.stderr  # the scope's own process lives on
    code, *notes = done.stdout.strip().splitlines()
    assert code == "-9"
    assert notes == [
        "container: the OOM killer killed a process in this cgroup at its 300 MiB limit"
        " during the block"
    ]
