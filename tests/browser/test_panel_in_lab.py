"""The panel where users see it: JupyterLab and Notebook 7 in headless Chromium, live while
the cell runs. Screenshots go to build/screenshots (Notebook 7's prefixed ``notebook7-``)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.conftest import Lab
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


def write_notebook(root: Path) -> str:
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    book.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(book, root / NOTEBOOK)
    return NOTEBOOK


def run_cell(page: Any, index: int) -> None:
    """Put the cursor in cell ``index`` and run it (Shift+Enter), without waiting."""
    page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content").click()
    page.keyboard.press("Shift+Enter")


def test_panel_is_live_in_the_browser_and_ends_with_the_report(lab: Lab, browser: Any) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 800})
    page.set_default_timeout(60_000)
    page.goto(lab.open_url(write_notebook(lab.root)))
    page.locator(".jp-Notebook .jp-Cell .cm-content").first.wait_for()
    # A cell run before the page is connected to its kernel is dropped, not queued: wait
    # until the server has the kernel idle, then until the page says it is connected.
    lab.wait_for_idle_kernel(NOTEBOOK)
    if lab.frontend == "jupyterlab":
        # "Python 3 (ipykernel) | Idle", or "Python 3 | Idle": the name depends on which
        # kernelspec the server found first, which differs between root and other users.
        page.get_by_text(re.compile(r"^Python 3.* \| Idle$")).wait_for()
        no_news = page.get_by_role("button", name="No", exact=True)
        if no_news.count():  # the news toast would cover outputs
            no_news.click()
    else:
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()

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
