"""Ranks that hold memory until told to let go, for tests/probes/test_launched.py.

Started by torch's launchers (the function :func:`hold`) or by torchrun (this file as a
script, rank from ``LOCAL_RANK``). Rank ``i`` holds ``(i + 1) * STEP`` bytes, then creates
``DIR/ready-i`` and waits for ``DIR/go``: the test reads the ranks while they hold.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

MiB = 1 << 20
STEP = 40 * MiB


def hold(index: int, directory: str) -> None:
    """Hold ``(index + 1) * STEP`` bytes until ``directory/go`` exists."""
    held = bytearray(b"x") * ((index + 1) * STEP)
    Path(directory, f"ready-{index}").touch()
    go = Path(directory, "go")
    while not go.exists():  # the test creates it once it has read us
        time.sleep(0.02)
    del held


if __name__ == "__main__":
    hold(int(os.environ["LOCAL_RANK"]), sys.argv[1])
