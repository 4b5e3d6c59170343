"""Watch mode and the panel as a user sees them in JupyterLab, light and dark.

A short watched cell gets one compact line; a long one gets the live panel, whose summary
replaces it in place (below the prints that came before it, above those after); the saved
notebook keeps one static output per report and no widget. Screenshots go to docs/ (the
README shows them) and build/screenshots.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.conftest import Lab
from tests.browser.pages import open_notebook, run_cell, write_notebook

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
SHOTS = ROOT / "build" / "screenshots"
NOTEBOOK = "watch.ipynb"

CELLS = [
    "%load_ext resmagic\n%resmagic watch on",
    "y = 2",
    """import time
held = []
for step in range(6):                  # ~3 s: past watch_panel_s, so the panel shows
    held.append(bytearray(48 << 20))
    print(f"step {step}")
    time.sleep(0.5)
kept = held[:2]                        # 96 MiB stays held
del held""",
]
LINE = re.compile(r"^\S+ (ms|µs|s), cpu \S+ \S+ · host \S+ → \S+ (\S+) \(peak \S+ \2, [+-]\S+ \2\)")


def cell(page: Any, index: int) -> Any:
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def wait_done(page: Any, index: int, prompt: int) -> None:
    cell(page, index).locator(".jp-InputPrompt").filter(has_text=f"[{prompt}]").wait_for()


def output_index(page: Any, index: int, selector: str) -> int:
    """Which output of cell ``index`` holds ``selector`` (-1: none)."""
    script = f"outs => outs.findIndex(o => o.querySelector({json.dumps(selector)}) !== null)"
    return int(cell(page, index).locator(".jp-OutputArea-output").evaluate_all(script))


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("lab", ["jupyterlab"], indirect=True)
def test_watch_line_and_panel(lab: Lab, browser: Any, theme: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = write_notebook(lab.root, NOTEBOOK, CELLS)
    page = open_notebook(lab, browser, name, viewport=(1400, 800), scale=2)
    try:
        _check(page, lab, theme)
    finally:
        page.screenshot(path=str(SHOTS / f"watch-{theme}-last.png"))


def _check(page: Any, lab: Lab, theme: str) -> None:
    run_cell(page, 0)
    wait_done(page, 0, 1)
    run_cell(page, 1)
    wait_done(page, 1, 2)
    short = cell(page, 1).locator(".jp-OutputArea-output")
    assert short.count() == 1
    assert LINE.match(short.inner_text()), short.inner_text()
    assert cell(page, 1).locator(".rm-panel").count() == 0

    run_cell(page, 2)
    live = cell(page, 2).locator(".rm-panel[data-state='running']")
    live.wait_for()  # after ~2 s, while the cell still prints
    where = output_index(page, 2, ".rm-panel[data-state='running']")
    assert where >= 1, "the panel appears where the cell's output has got to, after a print"
    time.sleep(0.6)  # a few more samples, for the screenshot only
    cell(page, 2).screenshot(path=str(SHOTS / f"watch-{theme}-running.png"))
    done = cell(page, 2).locator(".rm-panel[data-state='ok'] .rm-row[data-device='host']")
    done.wait_for()
    assert output_index(page, 2, ".rm-panel[data-state='ok']") == where, "one place"
    data = done.evaluate("r => ({...r.dataset})")
    assert int(data["peakRise"]) >= 250 << 20  # six 48 MiB steps above the start
    bar = done.locator(".rm-bar [data-scale]")
    scale = int(bar.get_attribute("data-scale"))
    assert int(data["peak"]) <= scale < int(data["total"]), "zoomed to the cell's range"
    assert done.locator(".rm-scale").inner_text().startswith("of ")
    shot = DOCS / f"panel-{theme}.png"
    cell(page, 2).screenshot(path=str(shot))
    cell(page, 1).screenshot(path=str(DOCS / f"watch-line-{theme}.png"))
    _check_saved(page, lab)


def _check_saved(page: Any, lab: Lab) -> None:
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    book = nbformat.read(lab.root / NOTEBOOK, as_version=4)
    while time.monotonic() < deadline and not book.cells[2].outputs:
        time.sleep(0.3)
        book = nbformat.read(lab.root / NOTEBOOK, as_version=4)
    for code in book.cells[1:3]:  # Shift+Enter on the last cell added an empty one
        ours = [o for o in code.outputs if "resmagic" in o.get("metadata", {})]
        kinds = [o.output_type for o in code.outputs]
        assert len(ours) == 1, f"one report output per watched cell, outputs: {kinds}"
        assert "application/vnd.jupyter.widget-view+json" not in ours[0]["data"]
        assert ours[0]["data"]["text/plain"].strip(), "no empty placeholder left behind"
    widgets = book.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json")
    states = (widgets or {}).get("state", {})
    assert not [m for m in states.values() if m["state"].get("value")], "no panel state saved"
