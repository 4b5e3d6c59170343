"""The running cell's id: sent by the frontend in a real kernel, none in terminal IPython."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from resmagic.ipython.which_cell import running_cell_id
from tests.kernel import Kernel

ID = "from resmagic.ipython.which_cell import running_cell_id\n"

HOOK = f"""{ID}seen = []
def _record(info):
    seen.append((running_cell_id(get_ipython(), info), running_cell_id(get_ipython())))
get_ipython().events.register("pre_run_cell", _record)"""

RUNNING = "[running_cell_id(get_ipython())]"  # a list: a bare None shows no Out[n]


@pytest.fixture(scope="module")
def kernel() -> Iterator[Kernel]:
    with Kernel() as k:
        assert k.run(HOOK).status == "ok"
        yield k


def _id_in(kernel: Kernel, code: str, cell_id: str | None) -> Any:
    done = kernel.run(code, cell_id=cell_id)
    assert done.status == "ok", done.error
    assert done.result is not None
    return done.result["text/plain"]


@pytest.mark.kernel
def test_a_kernel_cell_reads_the_id_its_frontend_sent(kernel: Kernel) -> None:
    assert _id_in(kernel, RUNNING, "a3f1-cell") == "['a3f1-cell']"


@pytest.mark.kernel
def test_pre_run_cell_sees_the_id_of_the_cell_about_to_run(kernel: Kernel) -> None:
    kernel.run("seen.clear()", cell_id="clearing")
    kernel.run("pass", cell_id="hooked")
    # from the ExecutionInfo it is given, and from the kernel's request without it
    assert kernel.value("seen[-2]") == ("hooked", "hooked")  # [-1]: this query's own cell


@pytest.mark.kernel
def test_a_cell_sent_without_an_id_has_none_not_the_previous_cells(kernel: Kernel) -> None:
    assert _id_in(kernel, RUNNING, "earlier") == "['earlier']"
    assert _id_in(kernel, RUNNING, None) == "[None]"
    assert kernel.value("seen[-2]") == (None, None)


@pytest.mark.kernel
def test_a_run_cell_nested_in_a_cell_belongs_to_the_notebook_cell(kernel: Kernel) -> None:
    code = (
        "inner = get_ipython().run_cell('nested = running_cell_id(get_ipython())')\n"
        "(nested, running_cell_id(get_ipython()), running_cell_id(get_ipython(), inner.info))"
    )
    # IPython gives the nested cell no id of its own; it still runs for cell "outer"
    assert _id_in(kernel, code, "outer") == "('outer', 'outer', 'outer')"


COMM_TARGET = f"""{ID}from comm import get_comm_manager
opened = []
get_comm_manager().register_target(
    "rm-cellid", lambda comm, msg: opened.append(running_cell_id(get_ipython()))
)"""


@pytest.mark.kernel
def test_a_widget_message_between_cells_names_no_cell(kernel: Kernel) -> None:
    # a comm message is what a widget's callback runs under, between the notebook's cells
    kernel.run(COMM_TARGET, cell_id="registering")
    content = {"comm_id": uuid.uuid4().hex, "target_name": "rm-cellid", "data": {}}
    kernel.kc.shell_channel.send(kernel.kc.session.msg("comm_open", content))
    assert kernel.value("opened") == [None]  # the kernel serves its requests in order


def test_terminal_ipython_knows_only_an_id_given_to_run_cell(ip: Any) -> None:
    code = "_resmagic_cell_id = running_cell_id(get_ipython())"
    ip.user_ns["running_cell_id"] = running_cell_id
    ip.run_cell(code, cell_id="given")
    assert ip.user_ns["_resmagic_cell_id"] == "given"
    ip.run_cell(code)
    assert ip.user_ns["_resmagic_cell_id"] is None
