"""A real ipykernel of this interpreter, driven through jupyter_client (as tests/kernel.py does).

The kernel is started from an explicit spec, ``sys.executable -m ipykernel_launcher``, so it
is this venv's Python whatever kernelspecs the machine has, and with a fresh IPYTHONDIR so
no profile (say one that loads resmagic or autotime at start-up) touches the numbers.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def export(ref: str) -> str:
    """Git ref ``ref``'s resmagic/ package in a fresh folder (for a kernel's PYTHONPATH)."""
    folder = tempfile.mkdtemp(prefix=f"resmagic-{ref.replace('/', '_')}-")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, "resmagic"],
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(folder, filter="data")
    return folder


def patched(patches: list[str]) -> str:
    """This tree's resmagic/ with ``patches`` applied, in a fresh folder.

    Raises:
        subprocess.CalledProcessError: a patch does not apply any more.
    """
    folder = tempfile.mkdtemp(prefix="resmagic-patched-")
    shutil.copytree(ROOT / "resmagic", Path(folder) / "resmagic")
    for patch in patches:
        subprocess.run(
            ["git", "apply", str(Path(patch).resolve())],
            cwd=folder,
            check=True,
            capture_output=True,
        )
    return folder


class _ThisPython(KernelSpecManager):
    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[
                sys.executable,
                "-m",
                "ipykernel_launcher",
                "-f",
                "{connection_file}",
                "--InteractiveShell.colors=nocolor",  # plain tracebacks in our error messages
            ],
            display_name="resmagic-bench",
            language="python",
        )


class KernelError(RuntimeError):
    pass


class Kernel:
    """Start a kernel, run code in it, always shut it down (use as a context manager)."""

    def __init__(self, workdir: str, env: dict[str, str] | None = None) -> None:
        """``env`` is added to this process's environment for the kernel (e.g. PYTHONPATH)."""
        self.ipythondir = tempfile.mkdtemp(prefix="resmagic-bench-ipython-")
        env = dict(
            os.environ,
            **(env or {}),
            IPYTHONDIR=self.ipythondir,
            PYDEVD_DISABLE_FILE_VALIDATION="1",
        )
        self.km = KernelManager(kernel_name="resmagic-bench", kernel_spec_manager=_ThisPython())
        # The kernel's own stderr (ipykernel's "running over TCP" warning) goes to a file.
        self.stderr = open(os.path.join(workdir, "kernel-stderr.log"), "ab")  # noqa: SIM115
        self.km.start_kernel(cwd=workdir, env=env, stderr=self.stderr)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)
        self.run(f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import inkernel")

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
        self.stderr.close()

    def run(self, code: str, timeout: float = 900) -> tuple[str, dict[str, Any] | None]:
        """Execute ``code`` as a top-level cell; return (stdout, execute_result data)."""
        msg_id = self.kc.execute(code)
        stdout: list[str] = []
        result: dict[str, Any] | None = None
        error: dict[str, Any] | None = None
        deadline = time.monotonic() + timeout
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.1))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                stdout.append(content["text"])
            elif kind == "execute_result":
                result = content["data"]
            elif kind == "error":
                error = content
            elif kind == "status" and content["execution_state"] == "idle":
                break
        while True:
            reply = self.kc.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        if error is not None:
            trace = "\n".join(error.get("traceback", []))
            message = f"kernel cell failed: {code[:200]!r}\n{trace}"
            raise KernelError(message)
        return "".join(stdout), result

    def call(self, expr: str, timeout: float = 900) -> Any:
        """Evaluate ``expr`` (an ``inkernel`` call returning JSON text) and decode it."""
        _, result = self.run(expr, timeout)
        if result is None:
            msg = f"no value from {expr!r}"
            raise KernelError(msg)
        return json.loads(ast.literal_eval(result["text/plain"]))
