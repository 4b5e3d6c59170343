"""The MLflow sink for real: a notebook kernel sends its cells to a real ``mlflow server``.

Everything is read back through ``MlflowClient``, as a user would; the server is stopped
mid-session to show the cells go on and the loss is said once.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

import resmagic
from tests.kernel import Execution, Kernel
from tests.sinks.conftest import kernel_env
from tests.sinks.server import MlflowServer, start_server

pytestmark = [pytest.mark.kernel, pytest.mark.mlflow]

FLUSH = "import resmagic; resmagic.sinks.flush(60)"


def _count(run: Execution) -> int:
    return int(run.reply["content"]["execution_count"])


def _ok(kernel: Kernel, code: str) -> Execution:
    run = kernel.run(code)
    assert run.status == "ok", run.error
    return run


EXPERIMENT = "resmagic-tests"


def _the_run(uri: str, notebook: Path) -> Any:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)  # MLFLOW_EXPERIMENT_NAME made it
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`resmagic.notebook` = '{notebook}'"
    )
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return tmp_path / "train.ipynb"


@pytest.fixture
def kernel(mlflow_server: MlflowServer, notebook: Path, tmp_path: Path) -> Iterator[Kernel]:
    env = {**kernel_env(mlflow_server.uri, notebook), "MLFLOW_EXPERIMENT_NAME": EXPERIMENT}
    with Kernel(env=env, cwd=str(tmp_path)) as k:
        _ok(k, "%load_ext resmagic")
        _ok(k, "%resmagic config sink=mlflow")
        yield k


def test_a_session_is_one_run_with_each_cell_as_metrics_at_its_step(
    kernel: Kernel, mlflow_server: MlflowServer, notebook: Path, tmp_path: Path
) -> None:
    train = _count(_ok(kernel, "%%timed train\nsum(range(10_000))"))
    scope = _count(_ok(kernel, "%%gpu_scope host --no-panel\nx = bytearray(8 << 20)"))
    again = _count(_ok(kernel, "%%timed train\nsum(range(10_000))"))
    _ok(kernel, "%%experiment_log runs/exp.log\nlogger.info('lr=%g', 3e-4)")
    failed = _count(kernel.run("%%timed\n1 / 0"))
    interrupted = _count(kernel.run("%%timed\nraise KeyboardInterrupt"))
    assert kernel.value(FLUSH) is True
    status = _ok(kernel, "%resmagic status").stdout
    assert "sink mlflow: 6 sent, 0 queued, 0 dropped, 0 failures (run " in status

    run = _the_run(mlflow_server.uri, notebook)
    client = MlflowClient(mlflow_server.uri)
    history = client.get_metric_history(run.info.run_id, "timed.train.wall_s")
    assert [m.step for m in history] == [train, again]
    assert all(m.value > 0 for m in history)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "timed.train.cpu_s")] == [
        train,
        again,
    ]
    (peak,) = client.get_metric_history(run.info.run_id, "gpu_scope.host.peak_bytes")
    before = run.data.metrics["gpu_scope.host.before_bytes"]
    assert peak.step == scope
    assert peak.value >= before + (8 << 20)  # the exact VmHWM peak saw the 8 MiB
    tags = run.data.tags
    assert tags[f"cell.{failed}.status"] == "error"
    assert tags[f"cell.{failed}.error"] == "ZeroDivisionError: division by zero"
    assert tags[f"cell.{interrupted}.status"] == "interrupted"
    assert not any(key.startswith(f"cell.{train}.") for key in tags)  # ok cells: no tags
    assert tags["resmagic.notebook"] == str(notebook)
    assert tags["resmagic.host"] == socket.gethostname()
    assert tags["resmagic.version"] == resmagic.__version__
    assert run.info.run_name.startswith("train.ipynb ")

    (artifact,) = client.list_artifacts(run.info.run_id, "experiment_log")
    assert artifact.path == "experiment_log/exp.log"
    local = client.download_artifacts(run.info.run_id, artifact.path, str(tmp_path))
    assert "lr=0.0003" in Path(local).read_text()

    _ok(kernel, "%resmagic config sink=off")
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    assert "sink: off" in _ok(kernel, "%resmagic status").stdout


def test_cells_go_on_when_the_server_goes_away_and_the_loss_is_said_once(
    notebook: Path, tmp_path: Path
) -> None:
    server = start_server(tmp_path / "own-server")  # this test stops it
    try:
        with Kernel(env=kernel_env(server.uri, notebook), cwd=str(tmp_path)) as kernel:
            said = [
                _ok(kernel, "%load_ext resmagic"),
                _ok(kernel, "%resmagic config sink=mlflow"),
                _ok(kernel, "%%timed before\n1"),
            ]
            assert kernel.value(FLUSH) is True
            server.stop()
            for i in range(4):
                said.append(_ok(kernel, f"%%timed after\n{i}"))
            said.append(_ok(kernel, FLUSH))
            status = _ok(kernel, "%resmagic status").stdout
            said.append(_ok(kernel, "%resmagic config sink=off"))  # ending the run fails too
    finally:
        server.stop()
    stderr = "".join(
        m["content"]["text"]
        for run in said
        for m in run.of_type("stream")
        if m["content"]["name"] == "stderr"
    )
    assert stderr.count("resmagic: the mlflow sink failed: MlflowException: ") == 1, stderr
    assert stderr.count("resmagic:") == 1, stderr
    assert "sink mlflow: 1 sent, 0 queued, 0 dropped, 4 failures" in status
