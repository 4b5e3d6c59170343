"""Freeing what a failed block's frames hold, so an out-of-memory error gives memory back."""

from __future__ import annotations

import inspect
import sys
from types import FrameType

__all__ = ["clear_frames"]


def clear_frames(exc: BaseException) -> None:
    """Drop the locals of every finished frame in ``exc``'s traceback and its chain.

    After IPython has formatted the traceback (which reads ``frame.f_locals``), clearing a
    frame does not free its locals on Python < 3.13: the ``f_locals`` snapshot keeps them
    (CPython #113939). So the snapshot of every cleared function frame is emptied too; a
    module frame's ``f_locals`` is the namespace itself and is left alone.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            _clear_frame(tb.tb_frame)
            tb = tb.tb_next
        todo += [current.__cause__, current.__context__]


def _clear_frame(frame: FrameType) -> None:
    snapshot = None
    if sys.version_info < (3, 13) and frame.f_code.co_flags & inspect.CO_OPTIMIZED:
        snapshot = frame.f_locals
    try:
        frame.clear()
    except RuntimeError:  # still executing (IPython's own frames above the cell)
        return
    if snapshot is not None:
        snapshot.clear()
