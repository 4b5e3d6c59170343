"""The status bar item in JupyterLab (Notebook 7: in the notebook's toolbar), in Chromium.

The kernel uses the GPU probe seam's fake device. The cell that allocates waits for a file
the test writes once it has seen the item change, so everything sampled before that is
provably "during the cell". Screenshots go to docs/ (the README shows them).
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Lab
from tests.browser.pages import open_notebook, run_cell, write_notebook
from tests.fakes import FAKE_GPU_IN_KERNEL

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ITEM = ".rm-usage"

BUSY = """import pathlib, time
for step in range(10):                  # ~5 s: 512 MiB more on the fake cuda:0 each step
    fake.cuda.malloc(0, 512 << 20)
    nv.devices[0].used += 512 << 20
    time.sleep(0.5)
deadline = time.monotonic() + 120       # then wait for the test to have seen enough
while not pathlib.Path({release!r}).exists() and time.monotonic() < deadline:
    time.sleep(0.05)"""


VIEWPORT = (1200, 560)


def wait_for_prompt(page: Any, index: int, number: int) -> None:
    prompt = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-InputPrompt")
    prompt.filter(has_text=f"[{number}]").wait_for()


def kernel_state(page: Any, frontend: str) -> str:
    """What the page shows as the kernel's state now: "busy" or "idle" (or "" if neither)."""
    if frontend == "jupyterlab":
        text = page.locator("#jp-main-statusbar").inner_text()
        found = re.search(r"\| (Idle|Busy)", text)
        return found.group(1).lower() if found else ""
    indicator = page.locator(".jp-Notebook-ExecutionIndicator").first
    return str(indicator.get_attribute("data-status") or "")


def item(page: Any) -> dict[str, str]:
    return dict(page.locator(ITEM).first.evaluate("n => ({text: n.textContent, ...n.dataset})"))


def prefix(lab: Lab) -> str:
    return "" if lab.frontend == "jupyterlab" else "notebook7-"


def shot(page: Any, lab: Lab, name: str) -> None:
    """The status bar (Notebook 7: the notebook's toolbar) into docs/."""
    where = "#jp-main-statusbar" if lab.frontend == "jupyterlab" else ".jp-NotebookPanel-toolbar"
    page.locator(where).first.screenshot(path=str(DOCS / f"{prefix(lab)}{name}.png"))


def test_the_item_follows_a_running_cell_and_the_kernel_stays_busy(
    lab: Lab, browser: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    cells = [FAKE_GPU_IN_KERNEL, "%load_ext resmagic", BUSY.format(release=str(release))]
    page = open_notebook(lab, browser, write_notebook(lab.root, "gpu.ipynb", cells), VIEWPORT)
    run_cell(page, 0)
    wait_for_prompt(page, 0, 1)
    run_cell(page, 1)
    wait_for_prompt(page, 1, 2)
    page.locator(f"{ITEM}[data-state='ok']").wait_for()
    assert item(page)["text"] == "cuda:0 1.0 / 16 GiB"  # before any measured cell: no peak

    run_cell(page, 2)
    page.locator(f"{ITEM}[data-running='true']").wait_for()
    states: list[str] = []
    seen: list[str] = []
    deadline = time.monotonic() + 90  # a bound on waiting, not an assertion
    while len(set(seen)) < 4 and time.monotonic() < deadline:
        states.append(kernel_state(page, lab.frontend))
        seen.append(item(page)["allocated"])
        if len(set(seen)) == 2 and len(set(seen[:-1])) == 1:  # once, mid-cell
            shot(page, lab, "statusbar-running")
        if seen[-1] == str(6 << 30):  # the cell's last allocation: nothing more will change
            break
        time.sleep(0.1)
    release.write_text("go")  # only now may the cell end
    wait_for_prompt(page, 2, 3)

    assert len(set(seen)) >= 3, f"the item did not follow the cell: {seen}"
    assert set(states) == {"busy"}, f"the kernel indicator left Busy mid-cell: {states}"
    page.locator(f"{ITEM}[data-running='false']").wait_for()
    done = item(page)
    assert done["peak"] == str(6 << 30)  # 1 GiB before + 10 x 512 MiB, exact
    assert done["text"] == "cuda:0 6.0 / 16 GiB · peak 6.0"
    shot(page, lab, "statusbar-done")


VISIBILITY = """state => {
  Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
  document.dispatchEvent(new Event('visibilitychange'));
}"""


def test_a_kernel_without_resmagic_is_grey_and_a_hidden_page_asks_nothing(
    lab: Lab, browser: Any
) -> None:
    page = open_notebook(lab, browser, write_notebook(lab.root, "plain.ipynb", ["1 + 1"]), VIEWPORT)
    grey = page.locator(f"{ITEM}[data-state='grey']")
    grey.wait_for()
    assert grey.inner_text() == "GPU: no resmagic"
    assert "%load_ext resmagic" in (grey.get_attribute("title") or "")
    shot(page, lab, "statusbar-no-resmagic")

    # A hidden page (a background tab) asks nothing; shown again, it asks at once.
    page.evaluate(VISIBILITY, "hidden")
    page.locator(f"{ITEM}[data-pending='false']").wait_for()
    asked = item(page)["replies"]
    time.sleep(5)  # two and a half intervals in which a visible item would have asked
    assert item(page)["replies"] == asked
    page.evaluate(VISIBILITY, "visible")
    page.wait_for_function(
        f"n => document.querySelector('{ITEM}').dataset.replies !== '{asked}'", arg=None
    )


def test_the_refresh_interval_is_a_setting_with_a_2_s_default(lab: Lab) -> None:
    url = f"{lab.url}/lab/api/settings/resmagic:plugin?token={lab.token}"
    with urllib.request.urlopen(url) as r:
        setting = json.load(r)
    interval = setting["schema"]["properties"]["refreshInterval"]
    assert interval["default"] == 2
    assert interval["minimum"] == 0.5


# The trap the server extension closes, shown with the frontend's own kernel connection: a
# usage_request sent to an idle kernel (activity, as the server records it) and mid-cell
# (the kernel's state as the page sees it once answered).
SEND = """async () => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const msg = {channel: 'control', content: {}, metadata: {}, parent_header: {}, buffers: [],
    header: {msg_id: crypto.randomUUID(), msg_type: 'usage_request', session: kernel.clientId,
             username: '', date: new Date().toISOString(), version: '5.3'}};
  const reply = await kernel.sendControlMessage(msg, true, true).done;
  await new Promise(resolve => setTimeout(resolve, 0));  // the idle status is handled by now
  return [reply.header.msg_type, kernel.status];
}"""

EXPOSE = "--LabApp.expose_app_in_browser=True"  # window.jupyterapp


def last_activity(lab: Lab, notebook: str) -> str:
    """The server's ``last_activity`` of ``notebook``'s kernel (what idle culling reads)."""
    with urllib.request.urlopen(f"{lab.url}/api/sessions?token={lab.token}") as r:
        (kernel,) = [s["kernel"] for s in json.load(r) if s["path"] == notebook]
    return str(kernel["last_activity"])


def settled_activity(lab: Lab, notebook: str) -> str:
    """``last_activity`` once the page's start-up traffic (widgets' comms) has ended."""
    seen = last_activity(lab, notebook)
    for _ in range(30):
        time.sleep(1)
        now = last_activity(lab, notebook)
        if now == seen:
            break
        seen = now
    return seen


WITHOUT = "--ServerApp.jpserver_extensions=resmagic.serverext=False"


@pytest.mark.parametrize("lab", ["jupyterlab"], indirect=True)
@pytest.mark.parametrize(
    "extension",
    [
        pytest.param("enabled", marks=pytest.mark.lab_args(EXPOSE)),
        pytest.param("disabled", marks=pytest.mark.lab_args(EXPOSE, WITHOUT)),
    ],
)
def test_polls_flip_the_indicator_and_count_as_activity_only_without_the_server_extension(
    lab: Lab, extension: str, browser: Any, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    wait = (
        f"import pathlib, time\nwhile not pathlib.Path({str(release)!r}).exists(): time.sleep(0.05)"
    )
    cells = ["%load_ext resmagic", wait]
    page = open_notebook(lab, browser, write_notebook(lab.root, "trap.ipynb", cells), VIEWPORT)
    run_cell(page, 0)
    wait_for_prompt(page, 0, 1)
    page.locator(f"{ITEM}[data-state='ok']").wait_for()
    # An idle kernel: a poll must not count as activity either (idle culling goes by it).
    if extension == "enabled":
        before = settled_activity(lab, "trap.ipynb")
        assert page.evaluate(SEND) == ["usage_reply", "idle"]
        time.sleep(1)  # the server's activity watcher has seen the status by then
        assert last_activity(lab, "trap.ipynb") == before
    else:
        before = last_activity(lab, "trap.ipynb")
        assert page.evaluate(SEND) == ["usage_reply", "idle"]
        deadline = time.monotonic() + 30
        while last_activity(lab, "trap.ipynb") == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert last_activity(lab, "trap.ipynb") != before

    run_cell(page, 1)
    page.get_by_text(re.compile(r"^Python 3.* \| Busy$")).wait_for()
    # The item asks mid-cell only with the extension; without, it shows its last figures.
    live = "[data-running='true']" if extension == "enabled" else "[data-stale='true']"
    page.locator(ITEM + live).wait_for()
    try:
        reply_type, state = page.evaluate(SEND)
    finally:
        release.write_text("go")
    assert reply_type == "usage_reply"
    assert state == ("busy" if extension == "enabled" else "idle")
