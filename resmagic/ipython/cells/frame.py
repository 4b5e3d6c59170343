"""One running cell's frame, and which frame a cell's ``post_run_cell`` result closes.

The runner (:mod:`resmagic.ipython.cells.runner`) keeps a stack of frames, one per running
cell (a nested ``run_cell``, as under ``%%capture``, is a nested frame). IPython hands
``post_run_cell`` the cell's ``ExecutionResult``; :func:`depth_of` finds its frame, and
:func:`count_escaped` counts a cell whose Ctrl-C escaped IPython's runner, as IPython would.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from resmagic.ipython.cells.stack import Layer
from resmagic.ipython.which_cell import BUMPED_BEFORE

__all__ = ["Frame", "count_escaped", "depth_of"]


@dataclass(slots=True)  # one per cell (issue 26, C5)
class Frame:
    """One running cell: its layers, and its scopes once entered."""

    info: Any
    layers: list[Layer]
    cell: int | None
    watched: bool
    scopes: AbstractContextManager[None] | None = field(default=None, repr=False)
    opened: bool = False
    interrupted: bool = False
    """A Ctrl-C arrived while ``pre_run_cell`` pushed the frame: the AST hook raises it."""


def count_escaped(shell: Any, frame: Frame, result: Any) -> None:
    """Count a cell whose Ctrl-C escaped IPython's runner from the AST hook, as IPython would.

    IPython before 9.8 counts a cell after running it, and only on the paths it knows
    (a syntax error, a refused AST, the body): a ``KeyboardInterrupt`` raised from the AST
    hook leaves ``execution_count`` where it was, so the next cell stored its input
    under the same number ("Session/line number was not unique in database. History
    logging moved to new session").
    """
    info = getattr(result, "info", None)
    if info is frame.info or not getattr(info, "store_history", False):
        return  # IPython ran its own path to the end and counted (or never counts)
    if not BUMPED_BEFORE and frame.cell is not None and shell.execution_count == frame.cell:
        shell.execution_count += 1


def depth_of(frames: list[Frame], info: Any) -> int | None:
    """Where the frame of the cell with ``info`` is on the stack (None: not there)."""
    for depth in range(len(frames) - 1, -1, -1):
        if frames[depth].info is info:
            return depth
    # A KeyboardInterrupt that escaped IPython's runner (one the AST hook raised) gets a
    # new ExecutionInfo of the same cell: the innermost frame is that cell's.
    top = frames[-1].info if frames else None
    same = ("raw_cell", "store_history", "silent")
    if top is None or info is None:
        return None
    if all(getattr(top, a, None) == getattr(info, a, None) for a in same):
        return len(frames) - 1
    return None
