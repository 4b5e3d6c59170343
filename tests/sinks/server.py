"""A real ``mlflow server`` on 127.0.0.1 with a SQLite store in a folder (tests, benchmark)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

# Generous: a first start creates the database (migrations) on a loaded 2-core machine.
# This is how long we wait for the server, never an assertion on how long it took.
START_WAIT_S = 180


@dataclass
class MlflowServer:
    """One server process (and its uvicorn child, in one process group)."""

    uri: str
    root: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the server and its children; idempotent."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        _kill_group(self.process.pid)  # the uvicorn child outlives a parent killed first

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(pgid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path) -> MlflowServer:
    """Start ``mlflow server`` storing under ``root``; return once it answers /health."""
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    command = [
        *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{root}/mlflow.db"),
        *("--artifacts-destination", str(root / "artifacts"), "--workers", "1"),
    ]
    # No job runner: it would start seven huey consumer processes for nothing here.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = MlflowServer(f"http://127.0.0.1:{port}", root, process)
    deadline = time.monotonic() + START_WAIT_S
    while not server.answers():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            log_text = (root / "server.log").read_text(errors="replace")[-3000:]
            msg = f"mlflow server did not start:\n{log_text}"
            raise RuntimeError(msg)
        time.sleep(0.2)
    return server
