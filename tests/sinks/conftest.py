"""The MLflow server fixture, and a kernel's environment pointed at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sinks.server import MlflowServer, start_server


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One server for a module's tests (each test uses runs of its own)."""
    server = start_server(tmp_path_factory.mktemp("mlflow"))
    yield server
    server.stop()


def kernel_env(uri: str, notebook: Path) -> dict[str, str]:
    """A kernel's environment: this server, this notebook, and no retrying a dead server."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "JPY_SESSION_NAME": str(notebook),
        # MLflow's default retries a refused connection for minutes: the outage test
        # wants each failure at once (the cells never wait on it either way).
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    }
