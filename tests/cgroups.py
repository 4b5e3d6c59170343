"""A real child cgroup v1 of this process's own memory (or pids) cgroup, with a limit, for tests.

Made inside the process's own cgroup (never at the hierarchy's root), and removed after the
test. Skipped where the machine has no writable cgroup v1 memory hierarchy (cgroup v2 is
tested in a VM: ``make cgroup-v2``).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from resmagic.probes import cgroup

MiB = 1 << 20
LIMIT = 300 * MiB
_names = itertools.count()


@contextmanager
def child_cgroup(limit: int = LIMIT) -> Iterator[Path]:
    """A new child of this process's memory cgroup with ``limit`` bytes; removed on exit."""
    group = cgroup.own()
    if group is None or group.version != 1 or not os.access(group.path, os.W_OK):
        pytest.skip("needs a writable cgroup v1 memory hierarchy (root on this machine)")
    with _child(Path(group.path), "memory.limit_in_bytes", str(limit)) as path:
        yield path


@contextmanager
def pids_cgroup(most: int) -> Iterator[Path]:
    """A new child of this process's cgroup v1 ``pids`` group: at most ``most`` tasks in it."""
    own = _own_v1("pids")
    if own is None:
        pytest.skip("needs a writable cgroup v1 pids hierarchy (root on this machine)")
    with _child(own, "pids.max", str(most)) as path:
        yield path


@contextmanager
def _child(parent: Path, limit: str, value: str) -> Iterator[Path]:
    """A new child group of ``parent`` with its ``limit`` file set to ``value``; removed after."""
    path = parent / f"resmagic-test-{os.getpid()}-{next(_names)}"
    path.mkdir()
    try:
        (path / limit).write_text(value)
        yield path
    finally:
        _remove(path)


def _own_v1(controller: str) -> Path | None:
    """This process's cgroup v1 folder of ``controller``, if mounted and writable."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, where = line.split(":", 2)
        if controller in controllers.split(","):
            path = Path("/sys/fs/cgroup", controller, where.lstrip("/"))
            return path if path.is_dir() and os.access(path, os.W_OK) else None
    return None


def _remove(path: Path) -> None:
    # A killed process leaves the cgroup a moment after its parent has reaped it.
    for _ in range(100):
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.05)
    path.rmdir()


def as_group(path: Path) -> cgroup.Cgroup:
    """The :class:`cgroup.Cgroup` for a test cgroup's folder."""
    mine = cgroup.own()
    assert mine is not None
    return cgroup.Cgroup(1, str(path), mine.mount)


def move(path: Path, pid: int) -> None:
    """Move process ``pid`` (all its threads) into the cgroup at ``path``."""
    (path / "cgroup.procs").write_text(str(pid))


def start_inside(path: Path, code: str) -> subprocess.Popen[str]:
    """Start ``python -c code`` (text pipes) and move it into the cgroup before it reads stdin."""
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        move(path, process.pid)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def run_inside(path: Path, code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` inside the cgroup; the code reads one line of stdin first."""
    process = start_inside(path, code)
    out, err = process.communicate("go\n", timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)
