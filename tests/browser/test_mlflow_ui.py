"""The MLflow run of a real notebook session, as a team opens it: MiB axes, steps 0, 1, 2.

A real ``mlflow server`` on 127.0.0.1, a real kernel that runs a short session with
``sink=mlflow`` (watched cells, a training cell run three times, an error), then Debian's
Chromium on the run's pages. Screenshots go to docs/ (the README shows them) and
build/screenshots.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from tests.kernel import Kernel
from tests.sinks.server import MlflowServer, start_server

pytestmark = [pytest.mark.browser, pytest.mark.kernel, pytest.mark.mlflow]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SHOTS = ROOT / "build" / "screenshots"
TRAIN = "%%timed train\nweights = bytearray(64 << 20)\nloss = sum(range(3_000_000))"
CELLS = [
    ("load", "%load_ext resmagic"),
    ("sink", "%resmagic config sink=mlflow"),
    ("watch", "%resmagic watch on --no-panel"),
    ("data", "data = bytearray(300 << 20)"),
    ("train", TRAIN),
    ("look", "sample = data[:1000]"),
    ("train", TRAIN),
    ("eval", "scores = [bytearray(1 << 20) for _ in range(120)]"),
    ("fails", "1 / 0"),
    ("train", TRAIN),
    ("free", "del data, scores"),
    ("unwatch", "%resmagic watch off"),
    ("flush", "import resmagic; resmagic.sinks.flush(60)"),
    ("off", "%resmagic config sink=off"),
]
CHARTS = "train|peak_above|held_mib|cell.wall"  # the charts the README shows


def _session(server: MlflowServer, folder: Path) -> tuple[str, str]:
    """Run the session in a kernel; the experiment's and the run's ids."""
    folder.mkdir()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server.uri,
        "MLFLOW_EXPERIMENT_NAME": "digits",
        "JPY_SESSION_NAME": str(folder / "train.ipynb"),
    }
    with Kernel(env=env, cwd=str(folder)) as kernel:
        for cell_id, code in CELLS:
            run = kernel.run(code, cell_id=cell_id)
            assert run.status == "ok" or cell_id == "fails", run.error
    client = MlflowClient(server.uri)
    experiment = client.get_experiment_by_name("digits")
    assert experiment is not None
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.status == "FINISHED"
    return str(experiment.experiment_id), str(found.info.run_id)


def _open(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_text("train.ipynb").first.wait_for()
    assistant = page.get_by_role("button", name="Close", exact=True)
    if assistant.count():  # MLflow 3's assistant panel takes a third of the page
        assistant.first.click()
    page.get_by_role("button", name="Toggle sidebar").click()
    return page


def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name))
    page.screenshot(path=str(DOCS / name))


def _numbers(page: Any, selector: str) -> list[float]:
    texts = [t.text_content() or "" for t in page.locator(selector).all()]
    return [float(t.replace("\u2212", "-").replace(",", "")) for t in texts if t.strip()]


def test_the_run_of_a_session_reads_in_mib_and_steps_per_series(
    browser: Any, tmp_path: Path
) -> None:
    server = start_server(tmp_path / "mlflow")
    try:
        experiment, run_id = _session(server, tmp_path / "digits")
        base = f"{server.uri}/#/experiments/{experiment}/runs/{run_id}"

        page = _open(browser, base)
        page.get_by_text("ZeroDivisionError: division by zero").wait_for()
        page.get_by_text("device.host.total_mib").wait_for()
        page.get_by_text("gpu_scope.host.peak_mib", exact=True).wait_for()
        body = page.inner_text("body")
        assert "_bytes" not in body
        assert re.search(r"cell\.\d+\.steps\s*:\s*timed\.train 2", body), body
        _shot(page, "mlflow-run.png")

        page.goto(f"{base}/model-metrics")
        page.get_by_placeholder("Search metric charts").fill(CHARTS)
        page.locator(".xtick text").first.wait_for()
        page.wait_for_timeout(1000)  # the charts draw one after another
        titles = page.get_by_text(re.compile(r"^(timed|gpu_scope)\.")).all_inner_texts()
        assert "timed.train.wall_s" in titles, titles
        steps = _numbers(page, ".xtick text")
        # Steps count each series' points (5 watched cells, 3 runs of train), never cell
        # numbers (4 to 11 here); Plotly puts half ticks between a short series' points.
        assert (min(steps), max(steps)) == (0, 4), steps
        values = _numbers(page, ".ytick text")
        assert values
        assert max(abs(v) for v in values) < 10_000, values  # MiB, not bytes
        _shot(page, "mlflow-chart.png")

        page.set_viewport_size({"width": 1700, "height": 800})  # the table's columns
        page.goto(f"{base}/artifacts/resmagic/top_cells.json")
        page.get_by_role("columnheader", name="peak_above_start_mib").wait_for()
        page.get_by_role("cell", name="ZeroDivisionError: division by zero").first.wait_for()
        _shot(page, "mlflow-top-cells.png")
    finally:
        server.stop()
