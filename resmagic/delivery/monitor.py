"""Delivery into any thread from Python 3.12: a ``sys.monitoring`` line event in the user's code.

While an exception waits, the tool turns on ``LINE`` and ``RAISE`` events in every thread; at
each line start of the waiting thread the ``LINE`` callback asks
:func:`~resmagic.delivery.where.safe_point` and raises the exception at the first safe one,
before the line runs. The ``RAISE`` event that follows, in the user's frame, cuts the
callback's own frame off the traceback, so it ends at the user's line; then the events go off.
``sys.monitoring`` tools are independent of each other and of ``sys.settrace``, so a debugger
or coverage keeps working. Where all the tool ids are taken, :func:`arm` says so and the caller
falls back.
"""

from __future__ import annotations

import sys
import threading
from types import CodeType

from resmagic.delivery import pending

__all__ = ["arm"]

_NAME = "resmagic memory guard"
_tool: int | None = None
_raised: dict[int, BaseException] = {}  # thread -> the exception raised there, until RAISE


def arm() -> bool:
    """Turn the line events on until the waiting exceptions land; False where it cannot."""
    if sys.version_info < (3, 12):
        return False
    tool = _claim_tool()
    if tool is None:
        return False
    events = sys.monitoring.events
    sys.monitoring.set_events(tool, events.LINE | events.RAISE)
    return True


def _claim_tool() -> int | None:
    global _tool
    if sys.version_info < (3, 12):
        return None
    if _tool is None:
        # 0, 1, 2 and 5 are named for debuggers, coverage, profilers and optimizers.
        for tool in (4, 3):
            if sys.monitoring.get_tool(tool) is None:
                sys.monitoring.use_tool_id(tool, _NAME)
                events = sys.monitoring.events
                sys.monitoring.register_callback(tool, events.LINE, _on_line)
                sys.monitoring.register_callback(tool, events.RAISE, _on_raise)
                _tool = tool
                break
    return _tool


def _on_line(code: CodeType, line: int) -> None:
    thread = threading.get_ident()
    stop = pending.waiting.get(thread)
    if stop is None:
        _settle()
        return
    if pending.claim_at(sys._getframe(1), stop, thread):
        error = _raised[thread] = stop.exc()
        raise error


def _on_raise(code: CodeType, offset: int, exc: BaseException) -> None:
    thread = threading.get_ident()
    if _raised.get(thread) is exc:
        del _raised[thread]
        tb = exc.__traceback__
        if tb is not None and tb.tb_next is not None and tb.tb_next.tb_frame.f_code is _CODE:
            tb.tb_next = None  # the traceback ends at the user's line, not in _on_line
        _settle()


def _settle() -> None:
    """Events off once nothing waits (the next sample turns them on again if it lost a race)."""
    if not pending.waiting and not _raised and _tool is not None and sys.version_info >= (3, 12):
        sys.monitoring.set_events(_tool, 0)


_CODE = _on_line.__code__
