"""Ranks a cell launches, told apart from other children: torchrun, spawn and fork launchers.

A stand-in kernel (``tests/launch_ranks.py``, a process of its own) launches two real ranks,
rank i holding (i + 1) x 40 MiB, and reads them with resmagic.probes.launched while they hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resmagic.probes import launched
from tests.launch_ranks import STEP

KERNEL = Path(__file__).parent.parent / "launch_ranks.py"


def seen_by_kernel(how: str, directory: Path, **env: str) -> Any:
    """What the stand-in kernel saw of the ranks it launched ``how``."""
    done = subprocess.run(
        [sys.executable, str(KERNEL), "kernel", how, str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**_environment(), **env},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("SEEN ")]
    assert lines, done.stdout + done.stderr
    return json.loads(lines[-1].removeprefix("SEEN "))


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}


def assert_two_ranks(seen: Any, named_by: str) -> None:
    assert seen["ranks"] == [[0, named_by], [1, named_by]]
    names = [name for name, _ in seen["rows"]]
    used = [value for _, value in seen["rows"]]
    assert names == ["rank 0", "rank 1"]
    assert used[0] >= STEP  # each rank's unique memory holds what it allocated
    assert used[1] >= 2 * STEP
    assert used[1] - used[0] >= 0.9 * STEP


def test_torchrun_workers_are_ranks_by_their_environment(tmp_path: Path) -> None:
    assert_two_ranks(seen_by_kernel("torchrun", tmp_path), launched.ENVIRONMENT)


def test_spawned_ranks_are_numbered_by_start_order(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    assert_two_ranks(seen_by_kernel("spawn", tmp_path), launched.START_ORDER)


def test_forked_ranks_are_numbered_by_start_order_during_a_launch(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    # WORLD_SIZE: as accelerate's notebook_launcher and debug_launcher set it for the launch.
    seen = seen_by_kernel("fork", tmp_path, WORLD_SIZE="2")
    assert_two_ranks(seen, launched.START_ORDER)


def test_forked_children_outside_a_launch_are_not_ranks(tmp_path: Path) -> None:
    assert seen_by_kernel("children", tmp_path) == {"ranks": [], "rows": []}
