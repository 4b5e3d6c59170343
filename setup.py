"""setuptools hook: the JupyterLab extension is built and put into the wheel with the package.

Everything else lives in pyproject.toml. A wheel gets the built extension under
``share/jupyter/labextensions/resmagic`` and the server extension's config under
``etc/jupyter/jupyter_server_config.d``: pip puts both into the environment, where JupyterLab
and Notebook 7 find them with no ``jupyter lab build``. The file lists are made after the
build (hashed file names), which is why they are not in pyproject.toml's ``data-files``.
An editable install gets neither: ``make`` links the dev build into the venv instead.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
LAB = HERE / "labextension"
SHARE = "share/jupyter/labextensions/resmagic"


def _build() -> None:
    subprocess.run([sys.executable, str(LAB / "build.py")], check=True)


def _data_files() -> list[tuple[str, list[str]]]:
    dist = LAB / "dist"
    folders: dict[str, list[str]] = {}
    for path in sorted(dist.rglob("*")):
        if path.is_file() and path.name != ".stamp":
            where = Path(SHARE) / path.parent.relative_to(dist)
            folders.setdefault(str(where), []).append(str(path.relative_to(HERE)))
    # install.json: `jupyter labextension list` names the Python package that installed the
    # extension, and how to remove it (UX audit 2026-12-06 P3-7), as jupyterlab_widgets does.
    folders.setdefault(SHARE, []).append("labextension/install.json")
    config = "etc/jupyter/jupyter_server_config.d"
    return [*folders.items(), (config, ["labextension/jupyter-config/resmagic.json"])]


class BuildPy(build_py):
    """Build the extension (if stale) and list its files as the wheel's data files."""

    def run(self) -> None:
        """Build, list the files, then copy the package as setuptools does."""
        if not getattr(self, "editable_mode", False):
            _build()
            self.distribution.data_files = _data_files()
        super().run()


class Sdist(sdist):
    """Build the extension first, so a wheel built from the sdist needs no node."""

    def run(self) -> None:
        """Build, then make the sdist."""
        _build()
        super().run()


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})
