"""The MLflow sink: one run per kernel session, each report as metrics at ``step=`` its cell.

``import mlflow`` (~2 s) happens at the first report, on the sink thread, never at
``import resmagic``, ``%load_ext`` or in a cell. It talks to MLflow through ``MlflowClient``
only, never the fluent ``mlflow.start_run``: a user's own active run in the notebook is left
alone. ``MLFLOW_TRACKING_URI`` picks the server (MLflow's own default otherwise),
``MLFLOW_EXPERIMENT_ID`` or ``MLFLOW_EXPERIMENT_NAME`` the experiment (else MLflow's default
one); how long a request to an unreachable server retries is MLflow's
``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT``.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

from resmagic._version import __version__
from resmagic.redact import redact
from resmagic.report import LogReport, Report
from resmagic.sinks.metrics import metrics_of, status_tags

__all__ = ["MlflowSink", "session_tags"]

ARTIFACT_DIR = "experiment_log"  # where each closed experiment_log file goes in the run


def session_tags(notebook: str | None) -> dict[str, str]:
    """The run's tags: notebook (or script), host, user, pid, resmagic's version."""
    source = notebook or (os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "")
    tags = {
        "resmagic.host": socket.gethostname(),
        "resmagic.pid": str(os.getpid()),
        "resmagic.version": __version__,
        "mlflow.source.type": "NOTEBOOK" if notebook else "LOCAL",
    }
    if notebook:
        tags["resmagic.notebook"] = notebook
    if source:
        tags["mlflow.source.name"] = source
    with contextlib.suppress(KeyError, OSError):  # no user name for this uid (containers)
        tags["mlflow.user"] = getpass.getuser()
    return tags


class MlflowSink:
    """Sends each report to one MLflow run, created at the first report.

    Args:
        notebook: the notebook's path (ipykernel's ``__session__``); default: the
            ``JPY_SESSION_NAME`` environment variable, else none (a script).
        tracking_uri: the server; default ``MLFLOW_TRACKING_URI`` or MLflow's default.
    """

    name = "mlflow"

    def __init__(self, notebook: str | None = None, tracking_uri: str | None = None) -> None:
        self.notebook = notebook or os.environ.get("JPY_SESSION_NAME") or None
        self.tracking_uri = tracking_uri
        self.run_id: str | None = None
        self._client: Any = None
        self._entities: Any = None
        self._uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        self._steps = 0  # the step of a report from outside a cell (a script's n-th report)

    def describe(self) -> str:
        """``"run 3f2a… at http://127.0.0.1:5000"``, or that no run exists yet.

        The URI's password and secret query values show as ``***``
        (:func:`resmagic.redact.redact`): this line lands in saved notebooks.
        """
        where = redact(self._uri) if self._uri else "MLflow's default store"
        if self.run_id is None:
            return f"no run yet, {where}"
        return f"run {self.run_id} at {where}"

    def send(self, reports: Sequence[Report]) -> None:
        """Log the reports' metrics and status tags in batches; each closed log as an artifact."""
        client, run_id = self._run()
        metrics, tags = [], []
        for report in reports:
            if report.cell is not None:
                step = report.cell
            else:
                self._steps += 1
                step = self._steps
            stamp = int((report.started_at + report.duration_s) * 1000)
            metrics += [
                self._entities.Metric(k, v, stamp, step) for k, v in metrics_of(report).items()
            ]
            tags += [self._entities.RunTag(k, v) for k, v in status_tags(report, step).items()]
        # One request takes at most 1000 metrics and 100 tags (MLflow's limits).
        requests = max(-(-len(metrics) // 1000), -(-len(tags) // 100))
        for n in range(requests):
            chunk = metrics[n * 1000 : (n + 1) * 1000], tags[n * 100 : (n + 1) * 100]
            client.log_batch(run_id, metrics=chunk[0], tags=chunk[1])
        for report in reports:
            if isinstance(report, LogReport) and report.path:
                path = os.path.abspath(os.path.expanduser(report.path))
                client.log_artifact(run_id, path, ARTIFACT_DIR)

    def close(self) -> None:
        """End the run as FINISHED (a kernel that dies leaves it RUNNING)."""
        if self.run_id is not None:
            self._client.set_terminated(self.run_id, "FINISHED")

    def _run(self) -> tuple[Any, str]:
        if self.run_id is not None:
            return self._client, self.run_id
        # Here, on the sink thread, and only once: the ~2 s import and the first request.
        import mlflow.entities
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        tags = session_tags(self.notebook)
        name = os.path.basename(tags.get("mlflow.source.name", "")) or "resmagic"
        run = client.create_run(
            _experiment(client), tags=tags, run_name=f"{name} {time.strftime('%Y-%m-%d %H:%M')}"
        )
        self._client, self._entities = client, mlflow.entities
        self._uri = str(client.tracking_uri)
        self.run_id = str(run.info.run_id)
        return client, self.run_id


def _experiment(client: Any) -> str:
    """``MLFLOW_EXPERIMENT_ID``, else ``MLFLOW_EXPERIMENT_NAME`` (made if missing), else ``"0"``."""
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if not name:
        return "0"
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id) if found is not None else str(client.create_experiment(name))
