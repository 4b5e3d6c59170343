"""Delivery into the main thread (up to Python 3.11): a pending call installs a line trace.

``PyThreadState_SetAsyncExc`` raises at the thread's next eval-breaker check, which in
CPython 3.11 comes right after a C call returns: after ``lock.acquire()`` and before the
``try:`` that would release it (586 of 820 exceptions left the lock held, reliability
2026-12-06 #2). Here the sampler thread instead asks the main thread, through
``Py_AddPendingCall``, to run :func:`_install` between two of its bytecodes; that sets a trace
function on the thread and on every frame of its stack. At each line start the trace asks
:func:`~resmagic.delivery.where.safe_point`, and at the first safe one it raises the exception
there, before the line runs, and the trace is gone (CPython removes a trace function that
raises). The exception is raised by a C callable on that line's first opcode event, so no
resmagic frame is in its traceback: the innermost frame is the user's line.

A pending call touches no signal handler (unlike a real-time signal, which also interrupts
blocking system calls in C extensions). The main thread runs it at its next eval-breaker check
(a thread blocked in C runs it when it returns, as it would an asynchronous exception).
Where another trace function is already set (a debugger, coverage), it is left alone and
:attr:`foreign` says so: the caller falls back.
"""

from __future__ import annotations

import _thread
import atexit
import collections
import ctypes
import functools
import sys
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

from resmagic.delivery import pending
from resmagic.delivery.where import is_user_frame

__all__ = ["arm", "disarm", "foreign"]

Trace = Callable[[FrameType, str, Any], Any]

foreign = False
"""True once the main thread was found traced by someone else (then nothing is installed)."""

_traced: list[FrameType] = []  # the frames given our local trace, to take it back
_queued = False  # a call to _install is queued or running


def arm() -> bool:
    """Ask the main thread to trace itself until its waiting exception lands.

    False where the last try found it traced by someone else (the call is still made, so a
    debugger that has gone is noticed).
    """
    global _queued
    if not _queued:
        # One call at a time: CPython 3.11 entering a Python frame (RESUME) under a trace
        # while pending calls run loops on it for ever if another pending call was queued
        # meanwhile (the eval breaker stays set while the pending calls are busy).
        _queued = True
        if _add_pending_call(_install_call, None) != 0:
            _queued = False  # the queue is full: the next sample tries again
            return False
    return not foreign


def disarm() -> None:
    """Take the trace off now (called in the main thread once nothing waits there any more)."""
    _uninstall()


def _install(_arg: object) -> int:
    # Runs in the main thread between two bytecodes of whatever it was running: it must
    # never raise (an exception from a pending call lands right there), and it calls no
    # Python function once the trace is set (see arm()).
    global foreign, _queued
    try:
        if _thread.get_ident() not in pending.waiting:
            return 0
        current = sys.gettrace()
        foreign = current is not None and current is not _on_call
        if current is not None:
            return 0
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            frame.f_trace = _on_line
            frame.f_trace_opcodes = False  # left on by an earlier stop caught in this frame
            _traced.append(frame)
            frame = frame.f_back
        sys.settrace(_on_call)
    except KeyboardInterrupt:
        _thread.interrupt_main()  # a Ctrl-C that arrived in here: raise it again, after us
    except Exception:
        _uninstall()
    finally:
        _queued = False
    return 0


def _on_call(frame: FrameType, event: str, arg: Any) -> Trace | None:
    if _thread.get_ident() not in pending.waiting:
        _uninstall()
        return None
    return _on_line if is_user_frame(frame) else None


def _on_line(frame: FrameType, event: str, arg: Any) -> Trace | None:
    thread = _thread.get_ident()
    stop = pending.waiting.get(thread)
    if stop is None:
        _uninstall()
        return None
    if event != "line" or not pending.claim_at(frame, stop, thread):
        return _on_line
    if sys.version_info >= (3, 12):
        # (Only where sys.monitoring had no tool id.) 3.12 calls the opcode trace a few
        # instructions late, past the line start: raise from here, a frame more in the
        # traceback.
        _uninstall()
        raise stop.exc()
    _uninstall(keep=frame)
    # The trace function for this line's first opcode, called right after this one returns:
    # it raises from C, so the traceback ends at the user's line, not in here.
    frame.f_trace_opcodes = True
    frame.f_trace = raiser = _raiser(stop.exc())
    return raiser


def _uninstall(keep: FrameType | None = None) -> None:
    while _traced:
        frame = _traced.pop()
        if frame is not keep and frame.f_trace is _on_line:
            frame.f_trace = None
    if keep is None and sys.gettrace() is _on_call:
        sys.settrace(None)


def _raiser(error: BaseException) -> Trace:
    """A C callable that raises ``error`` whatever it is called with, adding no frame.

    ``min(frame, event, arg, key=k)`` calls ``k(frame)``; ``k`` is a ``defaultdict`` lookup of
    a missing key, which calls its factory; the factory throws ``error`` into an exhausted
    generator, which raises it at once.
    """
    throw = functools.partial(_spent.throw, error)
    return functools.partial(min, key=collections.defaultdict(throw).__getitem__)


def _exhausted() -> Generator[None, None, None]:
    yield None


_spent = _exhausted()
for _ in _spent:
    pass

atexit.register(_uninstall)  # a stop still waiting as the interpreter ends: trace no more

_install_call = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(_install)
_add_pending_call = ctypes.pythonapi.Py_AddPendingCall
_add_pending_call.argtypes = [ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p), ctypes.c_void_p]
_add_pending_call.restype = ctypes.c_int
