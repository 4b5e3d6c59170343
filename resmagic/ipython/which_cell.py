"""Which cell is running: its ``In[n]`` (IPython's counter) and its notebook id (the frontend's).

**The number.** IPython 9.8 moved the execution counter's bump from after a cell to before
it (:data:`BUMPED_BEFORE`). The counter is a fact of the shell; which cell a report belongs
to is the cell runner's answer (:attr:`resmagic.ipython.cells.runner.CellRunner.cell`: the
innermost running cell's number, taken from here when the cell started). The hooks that may
run before the runner's own ``pre_run_cell`` (the guard, the status bar, the live table)
read it here.

**The id**, as the frontend sent it (or None). JupyterLab 4 and Notebook 7 send each cell's
nbformat id in the execute request's metadata (``{"cellId": "..."}``); ipykernel 6.29 to 7.4
hand it to IPython 8.17 to 9.19 as ``ExecutionInfo.cell_id``. Three places hold it while a
cell runs, and one is enough:

1. the ``ExecutionInfo`` that ``pre_run_cell(info)`` and ``post_run_cell(result)`` get;
2. the shell's parent message, ``shell.get_parent()`` (ipykernel's ``ZMQInteractiveShell``),
   read only when it is an ``execute_request``: between cells it can be a widget's
   ``comm_msg``, whose metadata names no cell;
3. ``shell.displayhook.exec_result.info``: IPython's own record of the cell whose body runs
   now (any host that passes ``cell_id`` to ``run_cell``; terminal IPython passes none).

The parent message comes before the display hook: a ``run_cell`` nested in a cell replaces
the hook's record with one of no id and then clears it, while the parent is still the
notebook's cell. Read on the main thread while the cell runs: from another thread,
ipykernel 6 answers with the latest request, which may be the next cell's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import IPython

__all__ = [
    "BUMPED_BEFORE",
    "execute_request",
    "request_header",
    "running_cell",
    "running_cell_id",
]

# IPython 9.8 moved the execution_count bump from after a cell to before it.
BUMPED_BEFORE = int(IPython.version_info >= (9, 8))
"""1 where IPython counts a cell before running it (9.8 and later), else 0."""


def running_cell(shell: Any) -> int | None:
    """The ``In[n]`` number of the cell running now (None before the first cell)."""
    return max(shell.execution_count - BUMPED_BEFORE, 0) or None


def running_cell_id(shell: Any, info: Any = None) -> str | None:
    """The running cell's id from its frontend (``"a3f1..."``), None where none was sent.

    Args:
        shell: the IPython shell (``get_ipython()``); a terminal shell gives None.
        info: the ``ExecutionInfo`` of a ``pre_run_cell``/``post_run_cell`` callback, if any.
    """
    found = getattr(info, "cell_id", None)
    if not found:
        request = execute_request(shell)
        metadata = request.get("metadata") if request is not None else None
        found = metadata.get("cellId") if isinstance(metadata, Mapping) else None
    if not found:
        running = getattr(getattr(shell, "displayhook", None), "exec_result", None)
        found = getattr(getattr(running, "info", None), "cell_id", None)
    return found if isinstance(found, str) and found else None


def execute_request(shell: Any) -> Mapping[str, Any] | None:
    """The execute request the kernel is serving now (header, metadata, content), else None.

    None in terminal IPython, and while the kernel serves another kind of request (a widget's
    ``comm_msg``).
    """
    parent = request_header(shell)
    if parent is None or parent[1].get("msg_type") != "execute_request":
        return None
    return parent[0]


def request_header(shell: Any) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """The request the kernel is serving now, of any kind, and its header; None if none.

    None in terminal IPython.
    """
    get_parent = getattr(shell, "get_parent", None)
    if get_parent is None:
        return None
    try:
        parent = get_parent()
    except Exception:  # a shell of another kernel, half torn down: no request to read
        return None
    if not isinstance(parent, Mapping):
        return None
    header = parent.get("header")
    return (parent, header) if isinstance(header, Mapping) else None
