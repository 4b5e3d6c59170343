"""The fallback: ``PyThreadState_SetAsyncExc``, sent only where it will land safely if it can.

For a thread other than the main one up to Python 3.11 (no way to run code in it), for the
main thread while a debugger or coverage traces it, and where ``sys.monitoring`` has no tool
id left. CPython raises an asynchronous exception at the thread's next eval-breaker check.
The sampler looks at the thread while it holds the GIL: a thread that gave the GIL up at an
eval-breaker check is parked exactly where the exception will be raised. Where that is the
start of a call made from a safe line of the user's code (the exception comes out of the call
before it did anything), the end of a loop body in the user's code (3.11 and later) or a safe
line start of it (3.10), the exception is sent, and lands there.

Elsewhere (the thread is inside a C call, often in I/O: a loop that logs to a file) it waits
one sample; from the next on it is sent if the user's line nearest to where the thread is
stands at a safe point, and lands where the thread next checks, which may be a few bytecodes
on: after a C call such as ``lock.acquire()`` and before its ``try:``, or inside the library
that line called, which may swallow it (the guard sends another at the next sample). That
is Ctrl-C's own hazard (reliability 2026-12-06 #2), and what this path keeps.
"""

from __future__ import annotations

import ctypes
import dis
import sys
from types import CodeType, FrameType

from resmagic.delivery import pending
from resmagic.delivery.where import CLEANUP_NAMES, is_user_frame

__all__ = ["arm", "withdraw"]

_sent: dict[int, type[BaseException]] = {}  # thread -> the exception CPython now holds for it
_RESUME = dis.opmap.get("RESUME", -1)
_JUMP_BACKWARD = dis.opmap.get("JUMP_BACKWARD", -1)


def arm(thread: int) -> bool:
    """Send the waiting exception if it will land at a safe point; True if it was sent.

    Whether the thread handles an exception cannot be seen from here: that check is lost.
    """
    stop = pending.waiting.get(thread)
    frame = sys._current_frames().get(thread)
    if stop is None or frame is None:
        return False
    judged, line = _parked(frame)
    stop.looks += 1
    if judged is None and (stop.callbacks or stop.looks > 1):
        judged = frame
        while judged is not None and not is_user_frame(judged):
            judged = judged.f_back  # the user's line that called the library it is in
    if judged is None or not pending.claim_at(judged, stop, thread, handling=False, line=line):
        return False
    _sent[thread] = stop.exc
    _set_async_exc(thread, stop.exc)
    return True


def withdraw(thread: int, exc: type[BaseException]) -> None:
    """Take back ``exc`` if CPython holds it for ``thread`` and has not raised it yet."""
    if _sent.pop(thread, None) is exc:
        _set_async_exc(thread, None)  # a no-op once it was raised


def _parked(frame: FrameType) -> tuple[FrameType | None, int | None]:
    """The frame (and line) a raise at ``frame``'s position comes from, where exactly known."""
    code, at = frame.f_code.co_code, frame.f_lasti
    if sys.version_info < (3, 11):
        # Up to 3.10 the check comes before the next instruction.
        if at < 0:
            return frame.f_back, None  # at the start of the call: out of the caller's line
        line = _line_starting_at(frame.f_code, at + 2)
        return (frame, line) if line is not None else (None, None)
    if not 0 <= at < len(code) - 1:
        return None, None
    if code[at] == _RESUME and code[at + 1] == 0 and frame.f_code.co_name not in CLEANUP_NAMES:
        return frame.f_back, None  # at the start of the call: out of the caller's line
    if code[at] == _JUMP_BACKWARD:
        return frame, None  # at the end of the loop body, before the next pass
    return None, None


def _line_starting_at(code: CodeType, offset: int) -> int | None:
    previous = None
    for start, _end, line in code.co_lines():
        if start == offset:
            return line if line != previous else None
        previous = line
    return None


def _set_async_exc(thread: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exc) if exc is not None else None
    )
