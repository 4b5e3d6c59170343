"""Ctrl-C never lands halfway through opening or closing a scope: it is held back, then raised.

A ``KeyboardInterrupt`` arrives between any two bytecodes of the main thread: between a
handler added and the run that remembers it, or on the first instruction of ``__exit__``,
before any ``try`` of ours can catch it. Either way the scope stays half open for good (a
logging handler, a sampler watch, a peak frame; reliability 2026-12-06 #3). As trio does,
resmagic puts its own SIGINT handler in place of Python's default while a scope may open or
close (:func:`hold`, :func:`release`), and lets the handler look at the frame it interrupts:
inside a function marked with :func:`protect` (or anything it calls) it only notes the
interrupt; anywhere else it does what Python's default does, raising ``KeyboardInterrupt``
right there.

The outermost protected function raises a noted interrupt when its work is done. The
interpreter runs a signal handler only after a call or at a loop's end, so a protected
function ends thus: its last call, then ``state.noted_at`` tested (no call), then return;
or, if :func:`due`, ``state.noted_at = None`` and ``raise KeyboardInterrupt`` (no call
between). A Ctrl-C that arrives after that test is raised where the caller goes on. A
function that releases the last hold clears ``state.noted_at`` if ``release`` raises (the
interrupt raised there stands for the noted one).

Only the main thread receives signals, and only Python's own default handler is replaced: a
program or framework that installed its own (asyncio's runner, ipykernel's async cells)
keeps it, and scopes then open and close as they did before. A Ctrl-C that was held back
for more than ``FORCE_AFTER_S`` lets the next one through at once, so a close that hangs (a
driver call that never returns) can still be broken.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module; typeshed has no stub
import functools
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import FrameType, TracebackType
from typing import Any, TypeVar

__all__ = [
    "FORCE_AFTER_S",
    "around",
    "due",
    "held_back",
    "hold",
    "holding",
    "protect",
    "release",
    "state",
]

F = TypeVar("F", bound=Callable[..., Any])

FORCE_AFTER_S = 1.0
"""After a Ctrl-C has been held back this long, the next one interrupts whatever runs."""

_MAIN = threading.main_thread().ident
_protected: set[object] = set()  # code objects of the functions marked with protect()


class _State:
    """The handler's state; changed only on the main thread (signal handlers run there)."""

    holds = 0
    """How many holds are open; the handler is ours while this is above 0."""
    previous: Any = None
    """The handler ours replaced (Python's default)."""
    noted_at: float | None = None
    """When a held-back Ctrl-C first arrived (None: none is held back)."""


state = _State()
"""The handler's state: protected functions test and clear ``noted_at`` without a call."""


def protect(func: F) -> F:
    """Mark ``func``: a Ctrl-C that arrives while it (or anything it calls) runs is held back."""
    _protected.add(func.__code__)
    return func


def _inside_protected(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code in _protected:
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    """Note a Ctrl-C inside protected code; elsewhere do what the replaced handler does."""
    if _inside_protected(frame):
        now = time.monotonic()
        if state.noted_at is None:
            state.noted_at = now
            return
        if now - state.noted_at < FORCE_AFTER_S:
            return
        state.noted_at = None  # held back too long: the user insists, let this one through
    previous = state.previous
    if callable(previous):
        previous(signum, frame)
    else:  # never replaced anything but Python's default; act as it does
        raise KeyboardInterrupt


def hold() -> bool:
    """Hold Ctrl-C back inside protected functions until :func:`release`; True if held.

    On the main thread, with Python's default SIGINT handler (or ours) in place, puts ours
    there (the first hold) or counts one more hold. Elsewhere does nothing and returns False:
    other threads receive no signals, and a handler the program installed stays its own.
    A Ctrl-C that arrived just before is raised here, before anything was held.
    """
    if threading.get_ident() != _MAIN:
        return False
    if state.holds:
        state.holds += 1
        return True
    current = _signal.getsignal(signal.SIGINT)
    if current is _on_sigint:  # left in place by a program that restored what it found
        state.holds = 1
        return True
    if current is not _signal.default_int_handler:
        return False
    try:
        # _signal, not signal: the wrapper converts the result to an enum in Python code,
        # where a Ctrl-C would lose the handler it returns (and it costs 6 us).
        state.previous = _signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main interpreter
        return False
    state.holds = 1
    return True


def release(held: bool) -> None:
    """Undo one :func:`hold` that returned ``held``; the last one puts the old handler back.

    A handler someone installed meanwhile is left in place. A Ctrl-C that arrives once the
    old handler is back is raised at once; it then stands for a noted one, which is cleared.
    """
    if not held:
        return
    state.holds -= 1
    if state.holds:
        return
    try:
        if _signal.getsignal(signal.SIGINT) is _on_sigint:
            _signal.signal(signal.SIGINT, state.previous)
    except KeyboardInterrupt:
        state.noted_at = None
        raise


def due() -> bool:
    """Whether the protected function calling this must raise a noted Ctrl-C now.

    True only in the outermost protected function of the main thread (an inner one leaves
    it to the function that called it). The caller clears ``state.noted_at`` right before
    it raises.
    """
    if state.noted_at is None or threading.get_ident() != _MAIN:
        return False
    return not _inside_protected(sys._getframe(2))


def holding() -> int:
    """How many holds are open (0: Python's handler is in place); for tests and status."""
    return state.holds


def held_back(then: Callable[..., None] | None = None) -> Callable[[F], F]:
    """Run the decorated function with Ctrl-C held back; one held back is raised at its end.

    For code that others call at their own time (IPython's hooks): the function holds the
    interrupt back itself (:func:`hold`), and is protected. ``then``, if given, is called
    with the function's arguments instead of raising (for a caller that would swallow it).
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            held = hold()
            try:
                return func(*args, **kwargs)
            finally:
                try:
                    release(held)
                except KeyboardInterrupt:
                    state.noted_at = None
                    raise
                if state.noted_at is not None and due():
                    state.noted_at = None
                    if then is None:
                        raise KeyboardInterrupt  # held back while it ran: raise it now
                    then(*args, **kwargs)

        return protect(run)  # type: ignore[return-value]  # wraps keeps F's signature

    return decorate


class around:
    """Enter ``cm`` with Ctrl-C held back from its ``__enter__`` until its ``__exit__`` ends.

    What :class:`~resmagic.scopes.base.Scope` does for itself, for a context manager that
    opens scopes (the layers of a cell run by our magic): a Ctrl-C that arrives while it
    enters closes it again and is raised from the ``with`` line; one that arrives while it
    exits is raised once it has.
    """

    def __init__(self, cm: AbstractContextManager[Any]) -> None:
        self.cm = cm
        self.held = False

    @protect
    def __enter__(self) -> Any:
        self.held = hold()
        try:
            value = self.cm.__enter__()
        except BaseException as exc:
            try:
                release(self.held)
            except KeyboardInterrupt:
                state.noted_at = None
                raise
            if state.noted_at is not None and due():
                state.noted_at = None
                raise KeyboardInterrupt from exc  # held back while it failed to enter
            raise
        if state.noted_at is not None and due():
            interrupt = KeyboardInterrupt()  # it arrived while entering: close, then raise
            try:
                self.__exit__(KeyboardInterrupt, interrupt, None)
            finally:
                state.noted_at = None  # also when a new Ctrl-C is raised as it returns
            raise interrupt
        return value

    @protect
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        merged = isinstance(exc, KeyboardInterrupt)
        try:
            return self.cm.__exit__(exc_type, exc, tb)
        finally:
            try:
                release(self.held)
            except KeyboardInterrupt:
                state.noted_at = None
                raise
            if state.noted_at is not None and due():
                state.noted_at = None
                if not merged:
                    raise KeyboardInterrupt  # held back while it closed: raise it now
