"""Forked children that hold memory until told to let go, synchronised by pipes, not sleeps."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

MiB = 1 << 20
HELD = 100 * MiB


@contextmanager
def holding_children(count: int) -> Iterator[list[int]]:
    """``count`` forked children, each holding ``HELD`` bytes until the block ends."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pids = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:  # the child: allocate, say so, hold until told
            held = bytearray(b"x") * HELD
            os.write(ready_w, b"r")
            os.read(go_r, 1)
            del held
            os._exit(0)
        pids.append(pid)
    try:
        for _ in range(count):
            assert os.read(ready_r, 1) == b"r"
        yield pids
    finally:
        os.write(go_w, b"g" * count)
        for pid in pids:
            os.waitpid(pid, 0)
        for fd in (ready_r, ready_w, go_r, go_w):
            os.close(fd)
