"""The MLflow sink: one run per kernel session, read as a team would read it.

Each report becomes metrics in MiB and seconds (:mod:`resmagic.sinks.metrics`) at the next
step of its series: ``timed.train`` counts 0, 1, 2 … over the runs of ``train``, whatever
the cells' numbers, so two sessions' charts line up run for run (the cells' numbers go to
the ``cell.N.*`` tags instead). Constants are params: each device's capacity and source,
resmagic's, Python's and (once imported) torch's versions. Each cell gets tags: its status,
error, Jupyter cell id, label and steps. At the end of the session (``sink=off``, unload,
exit) ``resmagic/top_cells.json`` ranks the cells that used the most
(:func:`resmagic.topcells.top_cells`). UX audit 2026-12-06 P2-4: bytes on the axis,
cell numbers as fractional steps, a chart of a constant, an unlabelled ``timed.wall_s``.

``import mlflow`` (~2 s) happens at the first report, on the sink thread, never at
``import resmagic``, ``%load_ext`` or in a cell. It talks to MLflow through ``MlflowClient``
only, never the fluent ``mlflow.start_run``: a user's own active run in the notebook is left
alone. ``MLFLOW_TRACKING_URI`` picks the server (MLflow's own default otherwise),
``MLFLOW_EXPERIMENT_ID`` or ``MLFLOW_EXPERIMENT_NAME`` the experiment (else MLflow's default
one); how long a request to an unreachable server retries is MLflow's
``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` and ``MLFLOW_HTTP_REQUEST_TIMEOUT``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from resmagic.cellfigures import CellFigures, fold
from resmagic.redact import redact
from resmagic.report import LogReport, Report
from resmagic.sinks.base import PartlySentError
from resmagic.sinks.cellids import CellIds
from resmagic.sinks.metrics import cell_tags, metrics_of, params_of, series_of
from resmagic.sinks.session import library_params, run_name, session_params, session_tags
from resmagic.topcells import TABLE, table_of, top_cells

__all__ = ["ARTIFACT_DIR", "TOP_CELLS", "MlflowSink", "session_tags"]

ARTIFACT_DIR = "experiment_log"  # where each closed experiment_log file goes in the run
TOP_CELLS = "resmagic/top_cells.json"  # the ranking, written when the session ends
KEEP_RUNS = 10_000  # cell runs remembered for the ranking (a script's loop of blocks: the last)
NOTE_WAIT_S = 0.5  # the most one send waits for cell ids still being noted (see CellIds.of)
# MLflow's limits for one log_batch request.
MAX_METRICS, MAX_PARAMS_TAGS, MAX_ENTITIES = 1000, 100, 1000


@dataclass
class _Batch:
    metrics: list[Any] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class MlflowSink:
    """Sends each report to one MLflow run, created at the first report.

    Args:
        notebook: the notebook's path (ipykernel's ``__session__``); default: the
            ``JPY_SESSION_NAME`` environment variable, else none (a script).
        tracking_uri: the server; default ``MLFLOW_TRACKING_URI`` or MLflow's default.
        cell_ids: where the reports' Jupyter cell ids come from (default: the recorder's
            running cell, noted as each report is published).
    """

    name = "mlflow"

    def __init__(
        self,
        notebook: str | None = None,
        tracking_uri: str | None = None,
        cell_ids: CellIds | None = None,
    ) -> None:
        self.notebook = notebook or os.environ.get("JPY_SESSION_NAME") or None
        self.tracking_uri = tracking_uri
        self.run_id: str | None = None
        self._client: Any = None
        self._entities: Any = None
        self._uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        self._cell_ids = cell_ids if cell_ids is not None else CellIds()
        self._cell_ids.start()  # here, on the caller's thread: before the runner subscribes
        self._steps: dict[str, int] = {}  # series → its next step
        self._runs: OrderedDict[str, CellFigures] = OrderedDict()  # "cell.12" → its figures
        self._params: dict[str, str] = {}  # what the run's params say, by key
        self._outside = 0  # reports from outside a cell so far (a script's)
        self._folders: dict[str, str] = {}  # a log file -> its folder in the run
        self._taken: set[str] = set()  # the names in experiment_log: its files and numbered folders

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
        """Log the reports' metrics, new params and changed cell tags; each closed log file."""
        if not reports:
            return
        client, run_id = self._run(reports[0])
        batch, deadline = _Batch(), time.monotonic() + NOTE_WAIT_S
        key = ""
        for report in reports:
            key = self._add(batch, report, deadline)
        self._new_params(batch, library_params(), key)
        _log_batch(client, run_id, batch, self._entities)
        self._upload(client, run_id, [r for r in reports if isinstance(r, LogReport) and r.file])

    def _upload(self, client: Any, run_id: str, logs: list[LogReport]) -> None:
        """Upload each log's file; one that fails leaves the others going (PartlySentError)."""
        failed: list[Exception] = []
        for report in logs:
            try:
                client.log_artifact(run_id, report.file, self._folder_of(report.file))
            except Exception as exc:
                failed.append(exc)
        if failed:
            raise PartlySentError(len(failed), failed[0])

    def _folder_of(self, file: str) -> str:
        """``experiment_log``; a second file of the same name from elsewhere, ``experiment_log/2``.

        MLflow keys an artifact by its folder and name: two runs' ``run.log`` from two
        folders would overwrite each other in one. A number is never a name already in
        ``experiment_log`` (a log named ``2``), nor the other way round: one of the two
        would be a file where the other needs a folder, and its upload would fail.
        """
        folder = self._folders.get(file)
        if folder is None:
            name, taken = os.path.basename(file), self._taken
            if name not in taken:
                folder = ARTIFACT_DIR
            else:
                n = 2
                while str(n) in taken:
                    n += 1
                name, folder = str(n), f"{ARTIFACT_DIR}/{n}"
            taken.add(name)
            self._folders[file] = folder
        return folder

    def close(self) -> None:
        """End the run as FINISHED, then log the top cells (a kernel that dies leaves it RUNNING).

        The end first: a close that Jupyter's shutdown cuts short leaves the run ended
        without its table, rather than a table in a run RUNNING for good.
        """
        self._cell_ids.stop()
        if self.run_id is None:
            return
        try:
            self._client.set_terminated(self.run_id, "FINISHED")
        finally:
            _log_table(self._client, self.run_id, table_of(top_cells(self._runs.values())))

    def _add(self, batch: _Batch, report: Report, deadline: float) -> str:
        """Put ``report`` in ``batch`` at its series' next step; returns its cell's key."""
        series = series_of(report)
        step = self._steps.get(series, 0)
        self._steps[series] = step + 1
        stamp = int((report.started_at + report.duration_s) * 1000)
        metric = self._entities.Metric
        batch.metrics += [metric(k, v, stamp, step) for k, v in metrics_of(report).items()]
        if report.cell is not None:
            key = f"cell.{report.cell}"
        else:
            self._outside += 1
            key = f"report.{self._outside}"
        before = self._runs.get(key)
        cell_id = self._cell_ids.of(report, deadline)
        after = fold(before, report, cell_id=cell_id, step=(series, step))
        self._keep(key, after)
        said = cell_tags(key, before) if before is not None else {}
        batch.tags.update({k: v for k, v in cell_tags(key, after).items() if said.get(k) != v})
        self._new_params(batch, params_of(report), key)
        return key

    def _keep(self, key: str, run: CellFigures) -> None:
        self._runs[key] = run  # an update keeps its place: the order the cells first ran
        while len(self._runs) > KEEP_RUNS:
            self._runs.popitem(last=False)

    def _new_params(self, batch: _Batch, found: dict[str, str], where: str) -> None:
        """Queue the params not logged yet; a changed value goes beside the first.

        MLflow refuses to change a param: a container limit raised at cell 14 goes under
        ``device.container.total_mib.cell.14``.
        """
        for key, value in found.items():
            known = self._params.get(key)
            if known is None:
                batch.params[key] = value
            elif known != value:
                batch.params[f"{key}.{where}"[:250]] = value
            # Counted as logged now: a send that fails loses its params as it loses its
            # metrics, and never blocks every later send on a value MLflow might hold.
            self._params[key] = value

    def _run(self, first: Report) -> tuple[Any, str]:
        if self.run_id is not None:
            return self._client, self.run_id
        # Here, on the sink thread, and only once: the ~2 s import and the first request.
        import mlflow.entities
        from mlflow import MlflowClient

        _quiet_here(logging.getLogger("mlflow"))

        client = MlflowClient(tracking_uri=self.tracking_uri)
        tags = session_tags(self.notebook)
        run = client.create_run(
            _experiment(client),
            # The session's first report, not the import's end: the run's duration then
            # spans the session (it read "444ms" for a session of minutes).
            start_time=int(first.started_at * 1000),
            tags=tags,
            run_name=run_name(self.notebook),
        )
        self._client, self._entities = client, mlflow.entities
        self._uri = str(client.tracking_uri)
        self.run_id = str(run.info.run_id)
        self._new_params(batch := _Batch(), session_params(), "session")
        _log_batch(client, self.run_id, batch, self._entities)
        return client, self.run_id


class _NotesOfThisThread(logging.Filter):
    """Drops the INFO and DEBUG records of the thread that made it: the sink's.

    A notebook shows a thread's output under whichever cell is newest ("Creating initial
    MLflow database tables..." under a cell that had nothing to do with it).
    """

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread or record.levelno >= logging.WARNING


def _quiet_here(logger: logging.Logger) -> None:
    """MLflow's own handler (its loggers, SQLAlchemy's, alembic's) says only warnings of ours."""
    for handler in logger.handlers:
        kept = [f for f in handler.filters if isinstance(f, _NotesOfThisThread)]
        if kept:
            kept[0].thread = threading.get_ident()  # a later sink thread: this one now
        else:
            handler.addFilter(_NotesOfThisThread())


def _log_batch(client: Any, run_id: str, batch: _Batch, entities: Any) -> None:
    """Send ``batch`` in as few requests as MLflow allows: 1000 entities, 100 params, 100 tags."""
    metrics = batch.metrics
    params = [entities.Param(k, v) for k, v in batch.params.items()]
    tags = [entities.RunTag(k, v) for k, v in batch.tags.items()]
    while metrics or params or tags:
        p, params = params[:MAX_PARAMS_TAGS], params[MAX_PARAMS_TAGS:]
        t, tags = tags[:MAX_PARAMS_TAGS], tags[MAX_PARAMS_TAGS:]
        room = min(MAX_METRICS, MAX_ENTITIES - len(p) - len(t))
        m, metrics = metrics[:room], metrics[room:]
        client.log_batch(run_id, metrics=m, params=p, tags=t)


def _log_table(client: Any, run_id: str, rows: list[dict[str, Any]]) -> None:
    """``rows`` as the run's ``resmagic/top_cells.json``: a table MLflow's UI shows as one.

    ``log_table`` needs pandas (mlflow-skinny has none): without it the same JSON (pandas'
    ``split`` form) goes up as a plain file, which the UI shows as text.
    """
    try:
        import pandas
    except ImportError:
        table = {"columns": list(TABLE), "data": [[row[c] for c in TABLE] for row in rows]}
        client.log_text(run_id, json.dumps(table), TOP_CELLS)
    else:
        client.log_table(run_id, pandas.DataFrame(rows, columns=list(TABLE)), TOP_CELLS)


def _experiment(client: Any) -> str:
    """``MLFLOW_EXPERIMENT_ID``, else ``MLFLOW_EXPERIMENT_NAME`` (made if missing), else ``"0"``."""
    if os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME")
    if not name:
        return "0"
    found = client.get_experiment_by_name(name)
    return str(found.experiment_id) if found is not None else str(client.create_experiment(name))
