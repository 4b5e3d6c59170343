"""Fixtures of the IPython-layer tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resmagic.config import settings
from resmagic.store.recorder import recorder


@pytest.fixture
def store(ip: Any, tmp_path: Path) -> Iterator[Path]:
    """The shell's run store moved to a fresh file for the test, and put back afterwards."""
    path = tmp_path / "shell.sqlite"
    before = settings.store
    ip.run_line_magic("resmagic", f"config store={path}")
    yield path
    settings.store = before
    recorder.writer()
