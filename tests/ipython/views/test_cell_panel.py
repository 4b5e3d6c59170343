"""The live panel in a real kernel: updates arrive during the cell, end exact, leave nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

import pytest

from tests.fakes import FAKE_GPU_IN_KERNEL
from tests.kernel import Execution, Kernel
from tests.panelhtml import parse_panel

pytestmark = pytest.mark.kernel

ALLOCATING_CELL = """%%gpu_scope
import time
held = []
for i in range(10):
    held.append(bytearray(8 << 20))   # grows by 8 MiB per step
    time.sleep(0.1)
held.clear()
'done'"""

LAST_REPORT = "import json, resmagic; json.dumps(resmagic.history()[-1].to_dict())"


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with Kernel() as k:
        assert k.run("%load_ext resmagic").status == "ok"
        yield k


def updates(run: Execution) -> list[tuple[datetime, str]]:
    """(kernel send time, panel markup) of every live widget value update, in order.

    The value a closing widget is emptied to (so saved notebooks keep little state) is no
    panel and is left out.
    """
    out = []
    for msg in run.of_type("comm_msg"):
        state = msg["content"]["data"].get("state", {})
        if msg["content"]["data"].get("method") == "update" and state.get("value"):
            out.append((msg["header"]["date"], state["value"]))
    return out


def summary_of(run: Execution) -> dict[str, str]:
    """The static summary a cell ends with: the live panel's replacement, or a new output."""
    ended = [data for data in run.reports if "rm-panel" in data.get("text/html", "")]
    ended = [data for data in ended if parse_panel(data["text/html"])["state"] != "running"]
    assert len(ended) == 1, f"{len(ended)} summaries"
    return ended[0]


def sent_at(run: Execution, msg_type: str) -> datetime:
    # jupyter_client parses the header's ISO date into a datetime
    return cast(datetime, next(m["header"]["date"] for m in run.of_type(msg_type)))


def last_report(kernel: Kernel) -> dict[str, Any]:
    value = kernel.value(LAST_REPORT)
    return json.loads(value)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def allocating(kernel: Kernel) -> Execution:
    run = kernel.run(ALLOCATING_CELL)
    assert run.status == "ok"
    return run


def test_updates_reach_iopub_while_the_cell_runs(allocating: Execution) -> None:
    started = sent_at(allocating, "execute_input")
    # The scope closes after IPython has shown the cell's value; its summary comes last.
    ended = allocating.of_type("update_display_data")[-1]["header"]["date"]
    live = [(t, parse_panel(v)) for t, v in updates(allocating)]
    running = [t for t, panel in live if panel["state"] == "running"]
    assert len(running) >= 5, f"only {len(running)} live updates in a 1 s cell"
    assert all(started < t < ended for t in running)
    # Spread over the run, not bunched at its end.
    assert (running[-1] - running[0]) >= (ended - started) / 2


def test_the_live_value_follows_the_allocation(allocating: Execution) -> None:
    lives = [
        parse_panel(v)["rows"][("host", "RSS")]["live"]
        for _, v in updates(allocating)
        if parse_panel(v)["state"] == "running"
    ]
    assert len(set(lives)) >= 3
    assert max(lives) - lives[0] >= 32 << 20  # several 8 MiB steps seen live


def test_the_final_state_is_the_report_in_history(kernel: Kernel, allocating: Execution) -> None:
    final = parse_panel(summary_of(allocating)["text/html"])
    report = last_report(kernel)
    assert final["state"] == report["status"] == "ok"
    rows = final["rows"]
    assert len(rows) == len(report["devices"])
    for device in report["devices"]:
        row = rows[(device["name"], device["source"])]
        assert row["before"] == device["before_bytes"]
        assert row["peak"] == device["peak_bytes"]
        assert row["after"] == device["after_bytes"]
        assert row["peak-exact"] == str(device["peak_exact"]).lower()
    host = report["devices"][0]
    assert host["peak_bytes"] - host["before_bytes"] >= 80 << 20


def test_the_summary_replaces_the_live_panel_in_place(allocating: Execution) -> None:
    shown = allocating.of_type("display_data")
    assert len(shown) == 1, "one output: the panel's place, then the live panel, its summary"
    first = shown[0]["content"]
    assert first["data"]["text/plain"] == "gpu_scope running"
    assert parse_panel(first["data"]["text/html"])["state"] == "running"
    updated = allocating.of_type("update_display_data")
    assert [m["content"]["transient"] for m in updated] == [first["transient"]] * 2
    live, summary = (m["content"] for m in updated)
    assert "application/vnd.jupyter.widget-view+json" in live["data"]
    assert parse_panel(live["data"]["text/html"])["state"] == "running"  # no widget manager
    summary = summary["data"]
    assert set(summary) == {"text/html", "text/plain"}
    assert parse_panel(summary["text/html"])["state"] == "ok"
    assert summary["text/plain"].startswith("gpu_scope  host ")
    # The panel's widget was emptied and closed: it leaves no model and little saved state
    # behind (the layout and style models all panels share are closed on unload).
    model = live["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
    closed = {m["content"]["comm_id"] for m in allocating.of_type("comm_close")}
    assert model in closed
    values = [
        m["content"]["data"]["state"].get("value")
        for m in allocating.of_type("comm_msg")
        if m["content"]["comm_id"] == model
    ]
    assert values[-1] == ""


def test_no_gpu_line_says_why(allocating: Execution) -> None:
    summary = summary_of(allocating)["text/html"]
    assert "rm-note" in summary
    assert "no GPU row" in summary
    assert "NVML" in summary


# A body that runs until its live widget exists, however slow the machine (no fixed sleep).
UNTIL_WIDGET = """%%gpu_scope
import time, ipywidgets
n, deadline = len(ipywidgets.Widget.widgets), time.monotonic() + 60
while len(ipywidgets.Widget.widgets) == n and time.monotonic() < deadline:
    time.sleep(0.01)"""


def test_widgets_do_not_pile_up_over_many_cells(kernel: Kernel) -> None:
    count = "import ipywidgets; len(ipywidgets.Widget.widgets)"
    kernel.run(UNTIL_WIDGET)
    before = kernel.value(count)
    for _ in range(10):
        run = kernel.run(UNTIL_WIDGET)
        assert run.of_type("comm_open"), "the cell waited for its live widget"
    assert kernel.value(count) == before


def test_a_short_cell_costs_no_widget_and_has_the_same_outputs(kernel: Kernel) -> None:
    run = kernel.run("%%gpu_scope\nx = 1\nx")
    assert not run.of_type("comm_open")
    kinds = [m["msg_type"] for m in run.messages if "data" in m["content"]]
    # The panel's place comes first, as in a long cell, and the summary fills it.
    assert kinds == ["display_data", "execute_result", "update_display_data"]
    assert run.of_type("display_data")[0]["content"]["data"]["text/plain"] == "gpu_scope running"
    summary = summary_of(run)
    assert parse_panel(summary["text/html"])["state"] == "ok"
    assert "no GPU row" not in summary["text/html"], "said once, under the first panel"


def test_an_error_ends_the_panel_as_error_and_the_cell_fails(kernel: Kernel) -> None:
    run = kernel.run("%%gpu_scope\nimport time\ntime.sleep(0.3)\n1 / 0")
    assert run.status == "error"
    assert run.error is not None
    assert run.error["ename"] == "ZeroDivisionError"
    summary = summary_of(run)
    assert parse_panel(summary["text/html"])["state"] == "error"
    assert "ZeroDivisionError" in summary["text/html"]
    assert last_report(kernel)["status"] == "error"


def test_no_panel_and_quiet_show_no_widget(kernel: Kernel) -> None:
    text = kernel.run("%%gpu_scope --no-panel\nx = 1")
    assert not text.of_type("comm_open")
    assert text.report_text.startswith("gpu_scope  host ")
    quiet = kernel.run("%%gpu_scope -q\nx = 1")
    assert not quiet.of_type("comm_open", "display_data", "stream")


def test_stacked_cell_shows_the_panel_and_text_for_the_others(kernel: Kernel) -> None:
    run = kernel.run("%%timed train\n%%gpu_scope\nimport time\ntime.sleep(0.3)\n6 * 7")
    assert run.result is not None
    assert run.result["text/plain"] == "42"
    assert "timed  train" in run.report_text
    assert run.of_type("comm_open")
    assert parse_panel(summary_of(run)["text/html"])["state"] == "ok"


def test_dashboard_updates_as_cells_run(kernel: Kernel) -> None:
    shown = kernel.run("%resmagic panel")
    views = shown.of_type("display_data")
    assert len(views) == 1
    view = views[0]["content"]
    assert set(view["data"]) == {"text/html", "text/plain"}, "static: it survives a restart"
    assert "resmagic-history" in view["data"]["text/html"]  # the same table as history
    run = kernel.run("%%timed dashboard-check\nx = 1")
    updated = [
        m["content"]
        for m in run.of_type("update_display_data")
        if m["content"]["transient"] == view["transient"]
    ]
    texts = [u["data"]["text/plain"] for u in updated]
    assert any(t.startswith("resmagic session") and "running: cell" in t for t in texts)
    assert "dashboard-check" in texts[-1]
    assert "idle: no cell running" in texts[-1]


def test_unload_stops_the_sampler_and_closes_the_dashboard() -> None:
    with Kernel() as k:
        k.run("%load_ext resmagic")
        k.run("%resmagic panel")
        msg_id = k.start("%%gpu_scope\nimport time\ntime.sleep(0.5)")
        k.collect(msg_id)
        threads = "import threading; sorted(t.name for t in threading.enumerate())"
        unloaded = k.run("%unload_ext resmagic")
        assert unloaded.status == "ok"
        after = k.run("x = 1")
        assert not after.of_type("update_display_data"), "the dashboard still follows cells"
        assert "resmagic-sampler" not in k.value(threads)
        assert k.value("import ipywidgets; len(ipywidgets.Widget.widgets)") == 0


def test_watched_cells_get_one_line_or_the_full_panel() -> None:
    with Kernel() as k:
        k.run("%load_ext resmagic")
        k.run("%resmagic watch on")
        short = k.run("y = 2")
        assert not short.of_type("comm_open")
        assert len(short.reports) == 1
        line = short.reports[0]["text/plain"].splitlines()[0]
        assert " · host " in line
        assert ", cpu " in line
        k.run("%resmagic config watch_panel_s=0.2")
        run = k.run("import time\nblock = bytearray(32 << 20)\ntime.sleep(0.6)\n7")
        assert run.result is not None
        assert run.result["text/plain"] == "7"
        assert parse_panel(summary_of(run)["text/html"])["state"] == "ok"
        # the timing ends the summary's line, no "timed  wall" line of its own (UX audit P3-1)
        assert " · wall " in summary_of(run)["text/plain"].splitlines()[0]
        assert "timed  wall" not in summary_of(run)["text/plain"]
        assert any(parse_panel(v)["state"] == "running" for _, v in updates(run))
        k.run("%resmagic config watch_panel_s=2 watch_panel_mib=16")
        moved = k.run("big = bytearray(64 << 20)")
        assert parse_panel(summary_of(moved)["text/html"])["state"] == "ok"
        k.run("%resmagic watch on --no-panel")
        plain = k.run("del big")
        assert not plain.of_type("comm_open")
        assert " · host " in plain.report_text
        k.run("%resmagic watch off")
        off = k.run("z = 1")
        assert not off.of_type("comm_open", "display_data", "stream")


def test_an_interrupted_cell_ends_its_panel_and_leaves_no_widget(kernel: Kernel) -> None:
    count = "import ipywidgets; len(ipywidgets.Widget.widgets)"
    before = kernel.value(count)
    msg_id = kernel.start("%%gpu_scope\nimport time\ntime.sleep(30)")
    deadline = time.monotonic() + 20
    seen_widget = False
    while not seen_widget and time.monotonic() < deadline:
        msg = kernel.kc.get_iopub_msg(timeout=20)
        seen_widget = msg["msg_type"] == "comm_open"  # the live widget is up: the cell runs
    assert seen_widget
    kernel.km.interrupt_kernel()
    run = kernel.collect(msg_id, timeout=20)
    assert run.error is not None
    assert run.error["ename"] == "KeyboardInterrupt"
    assert parse_panel(summary_of(run)["text/html"])["state"] == "interrupted"
    assert last_report(kernel)["status"] == "interrupted"
    assert kernel.value(count) == before
    assert kernel.run("%%gpu_scope\n6 * 7").result == {"text/plain": "42"}


GiB = 1 << 30

GPU_CELL = """%%gpu_scope
import time
fake.cuda.malloc(0, 3 << 30); nv.devices[0].used = 5 << 30
time.sleep(0.5)
fake.cuda.free(0, 2 << 30); nv.devices[0].used = 3 << 30
time.sleep(0.25)"""


def test_gpu_rows_through_the_probe_seam() -> None:
    """The GPU is the one fake allowed: the same panel, with allocator and NVML rows."""
    with Kernel() as k:
        assert k.run("%load_ext resmagic").status == "ok"
        assert k.run(FAKE_GPU_IN_KERNEL).status == "ok"
        run = k.run(GPU_CELL)
        assert run.status == "ok"
        live = [parse_panel(v) for _, v in updates(run)]
        running = [p for p in live if p["state"] == "running"]
        assert running
        summary = summary_of(run)
        assert ("cuda:0", "torch allocator") in running[0]["rows"]
        assert ("cuda:0", "NVML") in running[0]["rows"]
        final = parse_panel(summary["text/html"])["rows"]
        allocator, device = final[("cuda:0", "torch allocator")], final[("cuda:0", "NVML")]
        assert (allocator["before"], allocator["peak"], allocator["after"]) == (
            GiB,
            4 * GiB,
            2 * GiB,
        )
        assert allocator["peak-exact"] == "true"
        assert (device["before"], device["peak"], device["after"]) == (2 * GiB, 5 * GiB, 3 * GiB)
        assert device["peak-exact"] == "false"  # NVML has no peak counter: sampled
        assert "rm-note" not in summary["text/html"]
        # The cell left 1 GiB allocated on cuda:0: the line under it says who holds it (the
        # fake's allocations are no tensors a variable holds).
        assert "cuda:0 held by: nothing we can name" in run.report_text
        assert "cuda:0 (NVML) 2.00 GiB → 3.00 GiB (peak 5.00 GiB, sampled)" in summary["text/plain"]
        assert k.value("fake.cuda.side_effect_inits") == []
