"""``%resmagic config sink=``, ``c.ResMagic.sinks``, the status line and unload, in IPython."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError

import resmagic
from resmagic.sinks.thread import sink_thread as runner

pytestmark = pytest.mark.usefixtures("fresh_history")


def _closed_port_uri() -> str:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow pointed at a port nobody listens on, failing at once instead of retrying."""
    uri = _closed_port_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    yield uri
    resmagic.settings.update(sink="off")


def test_an_unknown_sink_is_a_usage_error_naming_the_known_ones(ip: Any) -> None:
    with pytest.raises(UsageError, match=r"unknown sink 'wandb': known sinks are mlflow, or off"):
        ip.run_line_magic("resmagic", "config sink=wandb")
    assert resmagic.settings.sink == "off"


def test_without_mlflow_installed_it_is_said_once_and_the_cell_succeeds(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # how Python spells "not installed"
    capsys.readouterr()
    assert ip.run_cell("%resmagic config sink=mlflow", store_history=True).success
    assert ip.run_cell("%%timed -q\npass", store_history=True).success
    err = capsys.readouterr().err
    assert err.count("resmagic: sink=mlflow needs the mlflow package:") == 1
    assert "pip install 'resmagic[mlflow]'" in err
    assert resmagic.settings.sink == "off"
    assert runner.names() == []
    ip.run_line_magic("resmagic", "status")
    assert "  sink: off" in capsys.readouterr().out


def test_status_counts_what_the_sink_could_not_send(
    ip: Any, no_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("resmagic", "config sink=mlflow")
    assert resmagic.settings.sink == "mlflow"
    for _ in range(2):
        assert ip.run_cell("%%timed -q\npass", store_history=True).success
    assert resmagic.sinks.flush(60)
    capsys.readouterr()
    ip.run_line_magic("resmagic", "status")
    out = capsys.readouterr().out
    assert (
        f"  sink mlflow: 0 sent, 0 queued, 0 dropped, 2 failures (no run yet, {no_server})" in out
    )
    ip.run_line_magic("resmagic", "config")
    assert "sink=mlflow" in capsys.readouterr().out.splitlines()
    ip.run_line_magic("resmagic", "config sink=off")
    assert runner.names() == []


def _ipython(code: str, **env: str) -> Any:
    """Run ``code`` after an IPython shell is made with ``c`` (a Config); its last line, as JSON."""
    script = textwrap.dedent(
        """
        import json, sys, threading
        from traitlets.config import Config
        from IPython.core.interactiveshell import InteractiveShell
        c = Config()
        """
    ) + textwrap.dedent(code)
    full = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", **env}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=full
    )
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_the_traitlet_starts_the_sink_and_unload_stops_it() -> None:
    code = """
        c.ResMagic.sinks = ["mlflow"]
        ip = InteractiveShell.instance(config=c)
        ip.run_line_magic("load_ext", "resmagic")
        import resmagic
        loaded = (resmagic.settings.sink, resmagic.sinks.sink_thread.names())
        ip.run_line_magic("unload_ext", "resmagic")
        unloaded = (resmagic.settings.sink, resmagic.sinks.sink_thread.names())
        alive = [t.name for t in threading.enumerate() if t.name == "resmagic-sinks"]
        print(json.dumps([loaded, unloaded, alive]))
        """
    (loaded, unloaded, alive), _ = _ipython(code, MLFLOW_TRACKING_URI=_closed_port_uri())
    assert loaded == ["mlflow", ["mlflow"]]
    assert unloaded == ["off", []]
    assert alive == []


def test_a_bad_traitlet_is_said_and_the_extension_still_loads() -> None:
    code = """
        c.ResMagic.sinks = ["wandb"]
        ip = InteractiveShell.instance(config=c)
        ip.run_line_magic("load_ext", "resmagic")
        print(json.dumps("timed" in ip.magics_manager.magics["cell"]))
        """
    loaded, err = _ipython(code)
    assert loaded is True
    assert "resmagic: c.ResMagic.sinks: unknown sink 'wandb'" in err


def test_status_and_sink_warnings_never_show_the_tracking_uri_secrets(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Reliability 2026-12-06 #10: %resmagic status printed MLFLOW_TRACKING_URI, password
    # and all, into the notebook's saved output.
    closed = _closed_port_uri().removeprefix("http://")
    uri = f"http://alice:s3cr3t-pass@{closed}/mlflow?token=t0ken-value&page=1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        ip.run_line_magic("resmagic", "config sink=mlflow")
        ip.run_cell(f"%%timed -q\nraise ValueError('{uri}')", store_history=True)
        capsys.readouterr()  # IPython's own traceback of the cell shows what the user wrote
        assert resmagic.sinks.flush(60)
        ip.run_line_magic("resmagic", "status")
        ip.run_cell("%%timed -q\npass", store_history=True)  # says the failure, once
    finally:
        resmagic.settings.update(sink="off")
    said = capsys.readouterr()
    shown = said.out + said.err
    assert f"http://alice:***@{closed}/mlflow?token=***&page=1" in said.out
    assert "resmagic: the mlflow sink failed" in said.err
    assert "s3cr3t-pass" not in shown
    assert "t0ken-value" not in shown
    report = resmagic.history()[0]
    assert report.error is not None
    assert "s3cr3t-pass" not in report.error  # what the store and the error tag get
