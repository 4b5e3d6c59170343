"""What a user gets from PyPI: the sdist and the wheel build, and the wheel works on its own.

Builds both with ``python -m build`` (an isolated build, as pip and PyPI's tools do), checks
that the sdist carries the whole test suite, installs the wheel with ipykernel into a fresh
venv and runs a magic cell in a kernel of that venv, away from this checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

import resmagic

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    return out


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_the_sdist_carries_every_test_file(dist: Path) -> None:
    sdist = _one(dist, "resmagic-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert wanted - names == set()
    assert {"tests/conftest.py", "tests/fakes.py", "LICENSE", "Makefile"} <= names


def test_the_wheel_has_one_version_the_typing_marker_and_no_tests(dist: Path) -> None:
    wheel = _one(dist, "resmagic-*.whl")
    assert wheel.name.startswith(f"resmagic-{resmagic.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert "resmagic/py.typed" in names
    assert not any(name.startswith("tests/") for name in names)
    text = metadata.decode()
    assert f"Version: {resmagic.__version__}" in text
    assert "License-Expression: MIT" in text
    assert "Provides-Extra: jupyter" in text
    assert "Provides-Extra: test" not in text  # development tools are dependency groups


def test_the_wheel_ships_the_built_lab_extension_and_enables_the_server_extension(
    dist: Path,
) -> None:
    wheel = _one(dist, "resmagic-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        data = f"resmagic-{resmagic.__version__}.data/data/"
        lab = data + "share/jupyter/labextensions/resmagic/"
        package = json.loads(archive.read(lab + "package.json"))
        config = json.loads(
            archive.read(data + "etc/jupyter/jupyter_server_config.d/resmagic.json")
        )
        install = json.loads(archive.read(lab + "install.json"))
    assert package["name"] == "resmagic"
    entry = package["jupyterlab"]["_build"]["load"]  # only a built extension has this
    assert lab + entry in names
    assert lab + "schemas/resmagic/plugin.json" in names
    assert config == {"ServerApp": {"jpserver_extensions": {"resmagic.serverext": True}}}
    # `jupyter labextension list` names the package: "(python, resmagic)" (UX audit P3-7)
    assert install["packageManager"] == "python"
    assert install["packageName"] == "resmagic"
    assert not any("node_modules" in name or name.endswith(".stamp") for name in names)


def test_the_sdist_carries_the_lab_extensions_sources_and_build(dist: Path) -> None:
    sdist = _one(dist, "resmagic-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    sources = {"setup.py", "labextension/package.json", "labextension/package-lock.json"}
    assert sources | {"labextension/src/index.ts", "labextension/dist/.stamp"} <= names
    assert not any(name.startswith("labextension/node_modules/") for name in names)


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel (and its dependencies) and ipykernel in it."""
    home = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
    python = home / "bin" / "python"
    wheel = _one(dist, "resmagic-*.whl")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel), "ipykernel"],
        check=True,
        capture_output=True,
    )
    return python


@pytest.fixture
def kernel(venv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    spec = tmp_path / "jupyter" / "kernels" / "resmagic-wheel"
    spec.mkdir(parents=True)
    argv = [str(venv), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "wheel"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    km, kc = start_new_kernel(kernel_name="resmagic-wheel", cwd=str(tmp_path))
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_the_installed_wheel_runs_a_magic_cell_in_a_kernel(kernel: Any, venv: Path) -> None:
    outputs: list[dict[str, Any]] = []
    code = (
        "%load_ext resmagic\n"
        "import resmagic, sys\n"
        "print(resmagic.__file__)\n"
        "print('torch' in sys.modules)"
    )
    reply = kernel.execute_interactive(code, output_hook=outputs.append, timeout=120)
    assert reply["content"]["status"] == "ok"
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    where, torch_loaded = text.split()
    assert where.startswith(str(venv.parent.parent))  # the venv's copy, not this checkout
    assert torch_loaded == "False"
    outputs.clear()
    reply = kernel.execute_interactive(
        "%%timed packaged\n6 * 7", output_hook=outputs.append, timeout=120
    )
    assert reply["content"]["status"] == "ok"
    shown = [m["content"]["data"].get("text/plain", "") for m in outputs if "data" in m["content"]]
    assert "42" in shown
    assert any(s.startswith("timed  packaged  wall ") for s in shown)


def test_the_installed_wheel_puts_both_extensions_where_jupyter_looks(venv: Path) -> None:
    prefix = venv.parent.parent
    assert (prefix / "share/jupyter/labextensions/resmagic/package.json").is_file()
    assert (prefix / "etc/jupyter/jupyter_server_config.d/resmagic.json").is_file()
