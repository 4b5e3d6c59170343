"""The process's own memory cgroup, read from a real cgroup v1 made for the test.

Each test makes a child of this process's own memory cgroup with a 300 MiB limit
(:mod:`tests.cgroups`), runs a real process inside it, and removes the cgroup afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from resmagic.probes import cgroup
from tests import cgroups
from tests.cgroups import LIMIT, MiB, run_inside

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
    with cgroups.child_cgroup() as path:
        yield path


def test_a_process_in_a_child_cgroup_sees_its_limit_as_the_host_total(child_cgroup: Path) -> None:
    done = run_inside(child_cgroup, READ)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["path"] == str(child_cgroup)
    assert seen["version"] == 1
    assert seen["limit"] == LIMIT
    assert seen["total"] == LIMIT  # not the machine's RAM (v1 read only the root's files)
    assert "limit 300 MiB" in seen["status"]


def test_the_oom_kill_counter_counts_a_real_kill(child_cgroup: Path) -> None:
    group = cgroups.as_group(child_cgroup)
    assert cgroup.oom_kills(group) == 0
    done = run_inside(child_cgroup, GREEDY)
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
    done = run_inside(child_cgroup, IN_A_SCOPE)
    assert done.returncode == 0, done.stderr  # the scope's own process lives on
    code, *notes = done.stdout.strip().splitlines()
    assert code == "-9"
    assert notes == [
        "container: the OOM killer killed a process in this cgroup at its 300 MiB limit"
        " during the block"
    ]


ROWS = """
import json, sys
sys.stdin.readline()
from resmagic import gpu_scope
with gpu_scope("host") as outer:
    spike = bytearray(b"x") * (100 << 20)
    del spike
    with gpu_scope("host") as inner:
        kept = bytearray(b"x") * (50 << 20)
rows = {name: scope.report.device("container") for name, scope in
        (("outer", outer), ("inner", inner))}
print(json.dumps({name: {"before": r.before_bytes, "peak": r.peak_bytes, "after": r.after_bytes,
                         "total": r.total_bytes, "exact": r.peak_exact, "line": r.summary()}
                  for name, r in rows.items()}))
"""


def test_the_container_row_shows_the_working_set_peak_and_limit(child_cgroup: Path) -> None:
    done = run_inside(child_cgroup, ROWS)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    outer, inner = seen["outer"], seen["inner"]
    for row in (outer, inner):
        assert row["total"] == LIMIT
        assert 45 * MiB <= row["after"] - row["before"] <= 60 * MiB  # the 50 MiB kept
    # The outermost scope reset the cgroup's counter and read its peak: the 100 MiB spike.
    assert outer["exact"]
    assert outer["peak"] >= outer["before"] + 100 * MiB
    assert "exact, shared" in outer["line"]
    assert outer["line"].startswith("container ")
    # A nested scope must not reset it again (other readers see resets): sampled instead.
    assert not inner["exact"]
    assert inner["after"] <= inner["peak"] < outer["peak"]
