"""A 'library' folder for the delivery tests: a module there counts as site-packages code."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

_names = itertools.count()


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Import source as a module from a folder named site-packages (a library, to resmagic)."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))

    def load(source: str) -> ModuleType:
        name = f"resmagic_test_library_{next(_names)}"
        (folder / f"{name}.py").write_text(source)
        return importlib.import_module(name)

    return load
