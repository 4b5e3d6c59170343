"""Raise an exception in a running thread at a safe point: a line start of the user's own code.

The memory guard's stop must end the user's loop, not vanish in a library that catches
``Exception`` (reliability 2026-12-06 #1), and must not land between ``lock.acquire()`` and
the ``try:`` that releases it (#2). :func:`send` leaves the exception waiting for the thread's
next safe point (:mod:`resmagic.delivery.where`) and arms the best way to raise it there:

- Python 3.12 and later, any thread: ``sys.monitoring`` line events (:mod:`.monitor`);
- up to 3.11, the main thread: a pending call that installs a line trace (:mod:`.linetrace`);
- otherwise (another thread up to 3.11, a main thread already traced by a debugger or
  coverage, no ``sys.monitoring`` tool id left): ``PyThreadState_SetAsyncExc`` once the
  thread's innermost frame is safe (:mod:`.asyncexc`), which can still land a few bytecodes
  on, as Ctrl-C does.

The first two raise the exception before the line runs, in the user's frame, with no
resmagic frame in the traceback.
"""

from __future__ import annotations

import threading
from types import FrameType

from resmagic.delivery import pending

__all__ = ["prepare", "rearm", "relax", "send", "waiting", "withdraw"]

_lock = threading.Lock()


def prepare() -> None:
    """Import and set up now what a stop's delivery needs (call it before a guarded block).

    The sampler thread sends the stop while the guarded loop holds the GIL. Imported there,
    at the first stop, each of the imports' system calls gave the GIL up and waited a switch
    interval (5 ms) to get it back: the first stop took 0.3-1 s to arm, and a loop growing
    by 150 MiB/s met the OOM killer first (3 of 12 runs of a logging loop, 0 of 12 after).
    """
    from resmagic.delivery import asyncexc, linetrace, monitor, where

    del asyncexc, linetrace, monitor  # imported: that is all they need
    where.warm()


def send(thread: int, exc: type[BaseException], anchor: FrameType | None = None) -> None:
    """Raise ``exc`` in ``thread`` at its next safe point (unless one waits there already).

    Called from another thread (the sampler), which calls :func:`rearm` at each sample while
    the exception waits. ``anchor``: the frame of the user's block (see
    :func:`~resmagic.delivery.where.safe_point`).
    """
    with _lock:
        pending.waiting.setdefault(thread, pending.Stop(exc, anchor))
    rearm(thread)


def relax(thread: int) -> None:
    """Let the waiting stop land in the user's code that a library calls back, too."""
    stop = pending.waiting.get(thread)
    if stop is not None:
        stop.callbacks = True


def rearm(thread: int) -> None:
    """Arm the delivery of the exception waiting for ``thread`` again (the fallback looks again)."""
    if thread not in pending.waiting:
        return
    from resmagic.delivery import asyncexc, linetrace, monitor  # only once a stop is sent

    if monitor.arm():
        return
    if thread == threading.main_thread().ident and linetrace.arm():
        return
    asyncexc.arm(thread)


def waiting(thread: int) -> bool:
    """True while an exception waits for a safe point in ``thread``."""
    return thread in pending.waiting


def withdraw(thread: int, exc: type[BaseException]) -> None:
    """Take ``exc`` back if it has not been raised in ``thread`` yet (a no-op once it was)."""
    with _lock:
        stop = pending.waiting.get(thread)
        if stop is not None and stop.exc is exc:
            del pending.waiting[thread]
    from resmagic.delivery import asyncexc, linetrace

    asyncexc.withdraw(thread, exc)
    if thread == threading.get_ident() == threading.main_thread().ident:
        linetrace.disarm()
