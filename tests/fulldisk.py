"""A real, small tmpfs for full-disk tests: mounted for one test, filled, unmounted after.

Needs root (``mount``); skipped with the reason where the test runs as another user or the
kernel refuses the mount (a container without ``CAP_SYS_ADMIN``).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SIZE = 64 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


@contextmanager
def small_tmpfs(where: Path, size: int = SIZE) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes mounted at ``where`` (made if missing); unmounted on exit."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is a real tmpfs here, and mounting one needs root")
    where.mkdir(parents=True, exist_ok=True)
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill(mount: Path, leave: int = 0) -> Path:
    """Fill the file system at ``mount`` up, then free ``leave`` bytes (whole pages) again.

    Returns the filler file: delete it to give the space back.
    """
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * PAGE)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - size % PAGE - leave))
    return filler
