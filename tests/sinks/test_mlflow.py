"""The MLflow sink for real: a notebook kernel sends its cells to a real ``mlflow server``.

Everything is read back through ``MlflowClient``, as a team would: metrics in MiB, steps
that count each series from 0, constants as params, each cell's tags, the top cells. The
server is stopped mid-session to show the cells go on and the loss is said once.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

import resmagic
from resmagic.report import LogReport
from resmagic.sinks.cellids import CellIds
from resmagic.sinks.mlflow import MlflowSink
from resmagic.topcells import TABLE
from tests.kernel import Execution, Kernel
from tests.reports import BASE, gpu_report, host_row
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


# A notebook session as a team's would be: watched cells, a labelled training cell run three
# times (the same Jupyter cell, renumbered each time), an experiment log, an error, a Ctrl-C.
CELLS = [
    ("load", "%load_ext resmagic"),
    ("sink", "%resmagic config sink=mlflow"),
    ("watch", "%resmagic watch on --no-panel"),
    ("alloc", "kept = bytearray(200 << 20)"),
    ("train", "%%timed train\nsum(range(10_000))"),
    ("small", "y = 2"),
    ("train", "%%timed train\nsum(range(10_000))"),
    ("log", "%%experiment_log runs/exp.log\nlogger.info('lr=%g', 3e-4)"),
    ("train", "%%timed train\nsum(range(10_000))"),
    ("fails", "1 / 0"),
    ("stopped", "raise KeyboardInterrupt"),
    ("slow", "import time\ntime.sleep(1.5)"),
    ("unwatch", "%resmagic watch off"),
]
HISTORY = "import json, resmagic; json.dumps([r.to_dict() for r in resmagic.history()])"


@dataclass
class Session:
    """The session's run read back after ``sink=off``, and what the kernel itself recorded."""

    client: Any
    run: Any
    reports: list[dict[str, Any]]  # resmagic.history() in the kernel, as dicts
    numbers: dict[str, list[int]]  # cell id → its execution counts, in order
    status: str  # %resmagic status before sink=off
    folder: Path

    def history(self, name: str) -> list[Any]:
        return list(self.client.get_metric_history(self.run.info.run_id, name))

    def of(self, scope: str, label: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.reports if r["scope"] == scope and r.get("label") == label]


@pytest.fixture(scope="module")
def session(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Session:
    folder = tmp_path_factory.mktemp("session")
    notebook = folder / "train.ipynb"
    env = {**kernel_env(mlflow_server.uri, notebook), "MLFLOW_EXPERIMENT_NAME": EXPERIMENT}
    numbers: dict[str, list[int]] = {}
    with Kernel(env=env, cwd=str(folder)) as kernel:
        for cell_id, code in CELLS:
            run = kernel.run(code, cell_id=cell_id)
            assert run.status == "ok" or cell_id in ("fails", "stopped"), run.error
            numbers.setdefault(cell_id, []).append(_count(run))
        reports = json.loads(kernel.value(HISTORY))
        assert kernel.value(FLUSH) is True
        status = _ok(kernel, "%resmagic status").stdout
        _ok(kernel, "%resmagic config sink=off")
    client = MlflowClient(mlflow_server.uri)
    run = _the_run(mlflow_server.uri, notebook)
    return Session(client, run, reports, numbers, status, folder)


def _mib(n: int) -> float:
    return round(n / (1 << 20), 3)


def _host(report: dict[str, Any]) -> dict[str, Any]:
    return next(row for row in report["devices"] if row["name"] == "host")


def test_a_session_is_one_finished_run_named_after_its_notebook(session: Session) -> None:
    n = len(session.reports)
    assert f"sink mlflow: {n} sent, 0 queued, 0 dropped, 0 failures (run " in session.status
    run = session.client.get_run(session.run.info.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("train.ipynb ")
    assert run.info.start_time == int(session.reports[0]["started_at"] * 1000)  # not the import
    tags = run.data.tags
    assert tags["resmagic.notebook"] == str(session.folder / "train.ipynb")
    assert tags["resmagic.host"] == socket.gethostname()
    (artifact,) = session.client.list_artifacts(run.info.run_id, "experiment_log")
    assert artifact.path == "experiment_log/exp.log"
    local = session.client.download_artifacts(run.info.run_id, artifact.path, str(session.folder))
    assert "lr=0.0003" in Path(local).read_text()


def test_memory_is_charted_in_mib_with_the_unit_in_the_name(session: Session) -> None:
    # UX audit 2026-12-06 P2-4: the y axis read 900000000.
    names = set(session.run.data.metrics)
    assert {"gpu_scope.host.peak_mib", "gpu_scope.host.held_mib"} <= names
    assert [name for name in names if "bytes" in name] == []
    gpu = session.of("gpu_scope")
    peaks = session.history("gpu_scope.host.peak_mib")
    assert [m.value for m in peaks] == [_mib(_host(r)["peak_bytes"]) for r in gpu]
    (alloc,) = [m for m in session.history("gpu_scope.host.held_mib") if m.step == 0]
    assert alloc.value >= 200  # the first watched cell keeps its 200 MiB


def test_steps_count_each_series_from_zero_whatever_the_cell_numbers(session: Session) -> None:
    # UX audit 2026-12-06 P2-4: steps were cell numbers, renumbered on every rerun.
    train = session.history("timed.train.wall_s")
    assert [m.step for m in train] == [0, 1, 2]
    assert [m.value for m in train] == [r["wall_s"] for r in session.of("timed", "train")]
    assert len(set(session.numbers["train"])) == 3  # one cell, three numbers: none is a step
    watched = len(session.of("gpu_scope"))
    assert watched == 5
    for name in ("gpu_scope.host.peak_mib", "gpu_scope.duration_s", "timed.cell.wall_s"):
        assert [m.step for m in session.history(name)] == list(range(watched)), name
    assert [m.step for m in session.history("experiment_log.records")] == [0]


def test_a_watched_cells_timing_reads_as_the_cells(session: Session) -> None:
    assert "timed.cell.wall_s" in session.run.data.metrics
    assert "timed.wall_s" not in session.run.data.metrics
    walls = [m.value for m in session.history("timed.cell.wall_s")]
    assert walls == [r["wall_s"] for r in session.of("timed")]


def test_constants_are_params_with_no_chart(session: Session) -> None:
    params = session.run.data.params
    host = _host(session.of("gpu_scope")[0])
    assert params["device.host.total_mib"] == str(round(host["total_bytes"] / (1 << 20)))
    assert params["device.host.source"] == "RSS"
    assert params["resmagic.version"] == resmagic.__version__
    assert params["python.version"] == platform.python_version()
    assert [name for name in session.run.data.metrics if "total" in name] == []
    assert session.history("gpu_scope.host.total_mib") == []
    assert session.history("gpu_scope.host.total_bytes") == []


def test_every_cell_is_tagged_with_its_id_label_status_and_steps(session: Session) -> None:
    tags = session.run.data.tags
    for step, number in enumerate(session.numbers["train"]):
        assert tags[f"cell.{number}.id"] == "train"
        assert tags[f"cell.{number}.label"] == "train"
        assert tags[f"cell.{number}.status"] == "ok"
        assert tags[f"cell.{number}.steps"] == f"timed.train {step}"
    (alloc,) = session.numbers["alloc"]
    assert tags[f"cell.{alloc}.steps"] == "gpu_scope 0, timed.cell 0"
    assert f"cell.{alloc}.label" not in tags
    (failed,) = session.numbers["fails"]
    assert tags[f"cell.{failed}.status"] == "error"
    assert tags[f"cell.{failed}.error"] == "ZeroDivisionError: division by zero"
    assert tags[f"cell.{failed}.id"] == "fails"
    (stopped,) = session.numbers["stopped"]
    assert tags[f"cell.{stopped}.status"] == "interrupted"


def _table(client: Any, run_id: str, folder: Path) -> list[dict[str, Any]]:
    local = client.download_artifacts(run_id, "resmagic/top_cells.json", str(folder))
    table = json.loads(Path(local).read_text())
    return [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]


def test_sink_off_leaves_the_top_cells_ranked_as_top_ranks_them(session: Session) -> None:
    rows = _table(session.client, session.run.info.run_id, session.folder)
    logged = json.loads(session.run.data.tags["mlflow.loggedArtifacts"])
    assert {"path": "resmagic/top_cells.json", "type": "table"} in logged  # a table in the UI
    peak = [row for row in rows if (row["by"], row["device"]) == ("peak", "host")]
    held = [row for row in rows if (row["by"], row["device"]) == ("held", "host")]
    time = [row for row in rows if row["by"] == "time"]
    assert peak[0]["cell_id"] == "alloc"  # 200 MiB; the other cells allocate nothing
    assert held[0]["cell_id"] == "alloc"
    assert held[0]["held_mib"] >= 200
    assert all(row["held_mib"] > 0 for row in held)
    assert {row["cell_id"] for row in time} == {
        "alloc",
        "train",
        "small",
        "log",
        "fails",
        "stopped",
        "slow",
    }
    walls = [row["wall_s"] for row in time]
    assert walls == sorted(walls, reverse=True)
    assert time[0]["cell_id"] == "slow"
    (train,) = [row for row in time if row["cell_id"] == "train"]
    last = session.numbers["train"][-1]
    assert (train["cell"], train["runs"], train["label"]) == (last, 3, "train")
    assert train["steps"] == "timed.train 2"
    (failed,) = [row for row in time if row["cell_id"] == "fails"]
    assert (failed["status"], failed["error"]) == ("error", "ZeroDivisionError: division by zero")


def test_without_pandas_the_top_cells_go_up_as_the_same_table_in_plain_json(
    mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # mlflow-skinny: no pandas
    sink = MlflowSink(tracking_uri=mlflow_server.uri, cell_ids=CellIds(lambda: None))
    big, small = gpu_report(), dataclasses.replace(gpu_report(), devices=(host_row(peak=0),))
    sink.send([dataclasses.replace(big, cell=1), dataclasses.replace(small, cell=2)])
    sink.close()
    assert sink.run_id is not None
    rows = _table(MlflowClient(mlflow_server.uri), sink.run_id, tmp_path)
    assert [(r["by"], r["device"], r["cell"]) for r in rows if r["by"] == "peak"] == [
        ("peak", "cuda:0.nvml", 1),  # the second cell had no GPU row
        ("peak", "host", 1),  # and its host never rose above its start
    ]
    assert list(rows[0]) == list(TABLE)


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return tmp_path / "train.ipynb"


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


def test_the_run_ends_before_its_top_cells_go_up(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """A close that Jupyter's shutdown cuts short must leave the run ended, table or not."""
    sink = MlflowSink(tracking_uri=mlflow_server.uri, cell_ids=CellIds(lambda: None))
    sink.send([dataclasses.replace(gpu_report(), cell=1)])
    sink.close()
    assert sink.run_id is not None
    run = MlflowClient(mlflow_server.uri).get_run(sink.run_id)
    assert run.info.status == "FINISHED"
    (table,) = (mlflow_server.root / "artifacts").rglob(f"{sink.run_id}/**/top_cells.json")
    assert run.info.end_time / 1000 <= table.stat().st_mtime


def test_each_log_goes_up_from_where_it_was_written_and_same_names_do_not_overwrite(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    notebook = tmp_path / "logs.ipynb"
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    (tmp_path / "run.log").write_text("the notebook folder's own run.log\n")
    back_out = (
        "import os, resmagic\nos.chdir('a')\n"
        "with resmagic.experiment_log('run.log') as log:\n    log.info('from a')\n"
        "os.chdir('..')"  # before the sink thread uploads the file
    )
    with Kernel(env=kernel_env(mlflow_server.uri, notebook), cwd=str(tmp_path)) as kernel:
        _ok(kernel, "%load_ext resmagic")
        _ok(kernel, "%resmagic config sink=mlflow")
        _ok(kernel, back_out)
        _ok(kernel, "%%experiment_log b/run.log\nlogger.info('from b')")
        assert kernel.value(FLUSH) is True
        status = _ok(kernel, "%resmagic status").stdout
        _ok(kernel, "%resmagic config sink=off")
    assert "sink mlflow: 2 sent, 0 queued, 0 dropped, 0 failures" in status
    client = MlflowClient(mlflow_server.uri)
    (run,) = client.search_runs(["0"], filter_string=f"tags.`resmagic.notebook` = '{notebook}'")
    got = {}
    for folder in ("experiment_log", "experiment_log/2"):
        local = client.download_artifacts(run.info.run_id, f"{folder}/run.log", str(tmp_path))
        got[folder] = Path(local).read_text()
    assert "from a" in got["experiment_log"]
    assert "from b" in got["experiment_log/2"]


def test_a_log_named_like_a_numbered_folder_overwrites_nothing_and_fails_nothing(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    """A log file named ``2`` and a second ``run.log`` both wanted ``experiment_log/2``."""
    files = []
    for folder, name in (("a", "run.log"), ("b", "run.log"), ("c", "2"), ("d", "3")):
        (tmp_path / folder).mkdir()
        files.append(tmp_path / folder / name)
        files[-1].write_text(f"from {folder}\n")
    sink = MlflowSink(tracking_uri=mlflow_server.uri, cell_ids=CellIds(lambda: None))
    for file in files:  # one at a time: the numbers are taken in the order the logs close
        report = LogReport(status="ok", **BASE, path=file.name, file=str(file), records=1)
        sink.send([report])
    sink.close()
    assert sink.run_id is not None
    root = next((mlflow_server.root / "artifacts").rglob(f"{sink.run_id}/artifacts"))
    got = {
        str(p.relative_to(root)): p.read_text()
        for p in (root / "experiment_log").rglob("*")
        if p.is_file()
    }
    # Before: "2" went up as experiment_log/2 where run.log's folder was, and failed.
    assert got == {
        "experiment_log/run.log": "from a\n",
        "experiment_log/2/run.log": "from b\n",
        "experiment_log/3/2": "from c\n",
        "experiment_log/4/3": "from d\n",
    }


def test_mlflows_own_notes_from_the_sink_thread_stay_out_of_the_cells(tmp_path: Path) -> None:
    """A first SQLite tracking store: MLflow says it creates its tables, under no cell of ours."""
    notebook = tmp_path / "quiet.ipynb"
    env = kernel_env(f"sqlite:///{tmp_path}/tracking.db", notebook)
    with Kernel(env=env, cwd=str(tmp_path)) as kernel:
        said = [
            _ok(kernel, "%load_ext resmagic"),
            _ok(kernel, "%resmagic config sink=mlflow"),
            _ok(kernel, "%%timed first\n1"),
            _ok(kernel, FLUSH),
            _ok(kernel, "%%timed second\n2"),
            _ok(kernel, FLUSH),
        ]
        status = _ok(kernel, "%resmagic status").stdout
    assert "sink mlflow: 2 sent, 0 queued, 0 dropped, 0 failures" in status
    text = "".join(m["content"]["text"] for run in said for m in run.of_type("stream"))
    assert text == "", text
