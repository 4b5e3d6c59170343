"""A Jupyter server (JupyterLab or Notebook 7) on a random port and Debian's Chromium.

Both are gone after every test. Tests that take ``lab`` run once per frontend;
``@pytest.mark.lab_args(...)`` adds options to the server's command line.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("RESMAGIC_REQUIRE_BROWSER"):  # CI installs Chromium: a skip would hide
        return
    skip = pytest.mark.skip(reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


FRONTENDS = {
    # module run as the server: (path that opens a notebook, options that silence it)
    "jupyterlab": (
        "lab/tree",
        [
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ],
    ),
    "notebook": ("notebooks", []),
}


@dataclass
class Lab:
    """A running Jupyter frontend: which one, where it serves and the folder it serves."""

    frontend: str
    url: str
    token: str
    root: Path
    process: subprocess.Popen[bytes]

    def open_url(self, notebook: str) -> str:
        path, _ = FRONTENDS[self.frontend]
        return f"{self.url}/{path}/{notebook}?token={self.token}"

    def wait_for_idle_kernel(self, notebook: str, timeout: float = 90) -> None:
        """Wait until the server runs a kernel for ``notebook`` and that kernel is idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{self.url}/api/sessions?token={self.token}") as r:
                sessions = json.load(r)
            states = [s["kernel"]["execution_state"] for s in sessions if s["path"] == notebook]
            if "idle" in states:
                return
            time.sleep(0.2)
        pytest.fail(f"no idle kernel for {notebook} within {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, token: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                json.load(r)
                return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the server did not answer within 90 s:\n{log.read_text()}")


def _descendants(pid: int) -> list[Any]:
    import psutil

    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return []


@pytest.fixture(params=sorted(FRONTENDS))
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    """A frontend on 127.0.0.1 with a token and a temporary root; killed with its kernels."""
    import psutil

    frontend: str = request.param
    _, quiet = FRONTENDS[frontend]
    marker = request.node.get_closest_marker("lab_args")
    extra = [str(arg) for arg in marker.args] if marker is not None else []

    root = tmp_path / "root"
    root.mkdir()
    home = tmp_path / "jupyter"
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
    }
    # The kernel must be this venv's Python, whatever kernelspecs the machine has.
    # A test parametrized with theme="dark" gets JupyterLab's dark theme from the start.
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("theme") == "dark":
        themes = home / "settings" / "@jupyterlab" / "apputils-extension"
        themes.mkdir(parents=True)
        settings = {"theme": "JupyterLab Dark"}
        (themes / "themes.jupyterlab-settings").write_text(json.dumps(settings))
    kernels = home / "data" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3",
        "language": "python",
    }
    (kernels / "kernel.json").write_text(json.dumps(spec))
    port, token = _free_port(), secrets.token_hex(16)
    log = tmp_path / "lab.log"
    argv = [
        sys.executable,
        "-m",
        frontend,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        *quiet,
        *extra,
        "--allow-root",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    children: list[Any] = []
    try:
        _wait_ready(url, token, process, log)
        yield Lab(frontend, url, token, root, process)
    finally:
        children = _descendants(process.pid)
        process.send_signal(signal.SIGINT)  # the server's own shutdown: kernels first
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)  # "Shutdown this Jupyter server (y/[n])?"
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        _gone, alive = psutil.wait_procs(children, timeout=10)
        for leftover in alive:
            leftover.kill()
        assert not alive, f"processes left behind: {[p.pid for p in alive]}"
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright (never ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()
