"""The panel where users see it: JupyterLab and Notebook 7 in headless Chromium, live while
the cell runs. Screenshots go to build/screenshots (Notebook 7's prefixed ``notebook7-``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Lab
from tests.browser.pages import open_notebook, run_cell, write_notebook
from tests.fakes import FAKE_GPU_IN_KERNEL

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "screenshots"

CELLS = [
    "%load_ext resmagic",
    """%%gpu_scope
import time
held = []
for step in range(20):                 # ~2 s, growing by 16 MiB a step
    held.append(bytearray(16 << 20))
    time.sleep(0.1)
kept = held[:4]                        # 64 MiB stays held: the panel marks it
del held""",
    "import json, resmagic\nprint(json.dumps(resmagic.history()[-1].to_dict()))",
    FAKE_GPU_IN_KERNEL,
    """%%gpu_scope
import time
fake.cuda.malloc(0, 3 << 30); nv.devices[0].used = 5 << 30  # fake GPU
time.sleep(0.8)
fake.cuda.free(0, 2 << 30); nv.devices[0].used = 3 << 30
time.sleep(0.4)""",
]

NOTEBOOK = "panel.ipynb"
RUNNING = ".rm-panel[data-state='running'] .rm-row[data-device='host']"
DONE = ".rm-panel[data-state='ok'] .rm-row[data-device='host']"


def test_panel_is_live_in_the_browser_and_ends_with_the_report(lab: Lab, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = write_notebook(lab.root, NOTEBOOK, CELLS)
    page = open_notebook(lab, browser, name, viewport=(1400, 800))

    prefix = "" if lab.frontend == "jupyterlab" else f"{lab.frontend}7-"
    try:
        _run_and_check(page, prefix)
    finally:
        page.screenshot(path=str(SHOTS / f"{prefix}notebook-last.png"))


def _run_and_check(page: Any, prefix: str) -> None:
    def shot(name: str) -> str:
        return str(SHOTS / f"{prefix}{name}.png")

    run_cell(page, 0)
    page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-InputPrompt").filter(
        has_text="[1]"
    ).wait_for()

    run_cell(page, 1)
    live = page.locator(RUNNING)
    live.wait_for()  # the panel shows while the cell still runs
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and page.locator(DONE).count() == 0:
        values = page.eval_on_selector_all(RUNNING, "rows => rows.map(r => r.dataset.live)")
        if values:
            seen.append(int(values[0]))
            if len(seen) == 8:
                page.screenshot(path=shot("notebook-running"))
                cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
                cell.screenshot(path=shot("panel-running"))
        time.sleep(0.1)
    assert len(set(seen)) >= 3, f"the live value did not change during the run: {seen}"

    done = page.locator(DONE)
    done.wait_for()
    final = {k: int(v) for k, v in done.evaluate("r => ({...r.dataset})").items() if v.isdigit()}

    run_cell(page, 2)
    output = page.locator(".jp-Notebook .jp-Cell").nth(2).locator(".jp-OutputArea-output")
    output.wait_for()
    report = json.loads(output.inner_text())
    host = next(d for d in report["devices"] if d["name"] == "host")
    assert report["status"] == "ok"
    assert final["before"] == host["before_bytes"]
    assert final["peak"] == host["peak_bytes"]
    assert final["after"] == host["after_bytes"]
    assert host["peak_bytes"] - host["before_bytes"] >= 160 << 20
    assert max(seen) <= host["peak_bytes"]
    assert done.evaluate("r => r.querySelector('.rm-delta').dataset.held") == "true"

    page.locator(".jp-Notebook .jp-Cell").nth(1).screenshot(path=shot("panel-done"))
    page.screenshot(path=shot("notebook-done"))

    # The same panel with GPU rows, from the GPU probe seam's fake (no GPU here).
    run_cell(page, 3)
    page.locator(".jp-Notebook .jp-Cell").nth(3).locator(".jp-InputPrompt").filter(
        has_text="[4]"
    ).wait_for()
    run_cell(page, 4)
    gpu = page.locator(".jp-Notebook .jp-Cell").nth(4)
    gpu.locator(".rm-panel[data-state='running'] .rm-row[data-device='cuda:0']").first.wait_for()
    gpu.screenshot(path=shot("panel-gpu-running"))
    rows = gpu.locator(".rm-panel[data-state='ok'] .rm-row[data-device='cuda:0']")
    rows.first.wait_for()
    sources = rows.evaluate_all("rs => rs.map(r => [r.dataset.source, r.dataset.peakExact])")
    assert sources == [["torch allocator", "true"], ["NVML", "false"]]
    gpu.screenshot(path=shot("panel-gpu-done"))
