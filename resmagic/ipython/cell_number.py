"""The running cell's ``In[n]``, read off IPython's execution counter (which 9.8 moved).

The counter is a fact of the shell; which cell a report belongs to is the cell runner's
answer (:attr:`resmagic.ipython.cells.runner.CellRunner.cell`: the innermost running
cell's number, taken from here when the cell started). The hooks that may run before the
runner's own ``pre_run_cell`` (the guard, the status bar, the live table) read it here.
"""

from __future__ import annotations

from typing import Any

import IPython

__all__ = ["BUMPED_BEFORE", "running_cell"]

# IPython 9.8 moved the execution_count bump from after a cell to before it.
BUMPED_BEFORE = int(IPython.version_info >= (9, 8))
"""1 where IPython counts a cell before running it (9.8 and later), else 0."""


def running_cell(shell: Any) -> int | None:
    """The ``In[n]`` number of the cell running now (None before the first cell)."""
    return max(shell.execution_count - BUMPED_BEFORE, 0) or None
