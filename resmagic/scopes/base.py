"""What every scope shares: ``with`` and decorator use, one report per run, published on close.

Per-run state never lives on the scope object. A run is kept in a context variable, so one
scope object used with ``with`` from two threads or two asyncio tasks gives each its own run;
``with`` on one object may nest. Code that opens a scope in one place and closes it in
another (IPython's cell events) holds the run itself: :meth:`Scope.running`.

A scope opened inside an ``experiment_log`` (in the same thread or task) hands its report
to that log: it looks up the enclosing report listeners when it opens, not when it closes.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Generic, TypeVar, cast
from weakref import ref

from resmagic.bus import current_cell, publish
from resmagic.report import Report, describe_error, status_of
from resmagic.scopes.interrupts import due, hold, protect, release, state
from resmagic.scopes.ranked import Ranks

__all__ = [
    "Listener",
    "Scope",
    "enclosing_listeners",
    "listeners_here",
    "listening",
    "open_in",
    "runs_here",
]

T = TypeVar("T")
R = TypeVar("R", bound=Report)
F = TypeVar("F", bound=Callable[..., Any])

Listener = Callable[[Report], None]

# (the scope, weakly, its run, the listeners it reports to, whether it holds Ctrl-C back),
# innermost last; immutable, so a thread or task that changes it changes only its own copy.
_Stack = tuple[tuple["ref[Scope[Any, Any]]", Any, tuple[Listener, ...], bool], ...]
_open_runs: ContextVar[_Stack] = ContextVar("resmagic_open_runs", default=())
_listeners: ContextVar[tuple[Listener, ...]] = ContextVar("resmagic_listeners", default=())


runs_here = _open_runs.get
"""The runs open on the stack of this thread or task, innermost last (see :func:`open_in`)."""

listeners_here = _listeners.get
""":func:`enclosing_listeners` without the Python call around it (a hot path's)."""


def open_in(stack: _Stack, scope: Scope[Any, Any]) -> bool:
    """Whether ``scope`` has a run in ``stack`` (one of :func:`runs_here`)."""
    return any(entry[0]() is scope for entry in stack)


def enclosing_listeners() -> tuple[Listener, ...]:
    """The report listeners of the logs open in this thread or task, outermost first."""
    return _listeners.get()


def listening(listener: Listener, on: bool) -> None:
    """Add ``listener`` to this thread's or task's report listeners, or take it out again."""
    current = _listeners.get()
    if on:
        _listeners.set((*current, listener))
    elif listener in current:
        _listeners.set(tuple(item for item in current if item is not listener))


class Scope(Generic[T, R]):
    """A context manager that is also a decorator, and reports when it closes.

    Subclasses implement :meth:`_open` (returns the per-run state and the ``as`` value) and
    :meth:`_close` (returns the report). A decorated function runs each call in a fresh
    copy, so recursion and threads each get their own run.
    """

    report: R | None
    """The report of the last run that closed; None before that."""

    decorates = True
    """Whether the scope can wrap a function (a subclass says why not by setting False)."""

    defers_interrupts = True
    """Whether a ``with`` block holds Ctrl-C back while the scope opens and closes (see
    :mod:`resmagic.scopes.interrupts`); a scope whose open and close change nothing outside
    its run may decline, for speed."""

    ranks: Ranks | None = None
    """``ranks=True``: every rank's row is gathered into the report before it is published."""

    def __init__(self) -> None:
        self.report = None
        self.open_runs = 0
        """How many runs of this object are open now, in any thread or task."""

    @protect
    def __enter__(self) -> T:
        # Ctrl-C is held back from here until __exit__ has closed the run: it could land
        # between an open and the record of the run, or on __exit__'s first instruction,
        # before any try (reliability 2026-12-06 #3). A protected function ends with a
        # test of state.noted_at after its last call (see scopes/interrupts.py).
        held = self.defers_interrupts and hold()
        try:
            run, value, listeners = self._start()
        except BaseException as exc:
            try:
                release(held)
            except KeyboardInterrupt:
                state.noted_at = None
                raise
            if state.noted_at is not None and due():
                state.noted_at = None
                raise KeyboardInterrupt from exc  # held back while it failed to open
            raise
        stack = _open_runs.get()
        while stack and stack[-1][0]() is None:
            stack = stack[:-1]  # a timed block whose __exit__ a Ctrl-C skipped (see there)
        try:
            _open_runs.set((*stack, (ref(self), run, listeners, held)))
        except BaseException as exc:  # Ctrl-C at that call's end, where nothing is held back
            _open_runs.set(stack)
            self._stop(run, listeners, exc)
            release(held)
            raise
        self.open_runs += 1  # no call between the record and the return: nothing can land
        if state.noted_at is not None and due():
            interrupt = KeyboardInterrupt()  # it arrived while opening: close, then raise it
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
    ) -> None:
        # Where no Ctrl-C is held back (timed, for speed), one that arrives as the block ends
        # is raised on this method's first instruction, before any line of it runs: the run
        # stays in the stack, harmless, and the next scope entered in this thread or task
        # drops it once this object is gone. From get() on, nothing can leave it open.
        stack = _open_runs.get()
        top = stack[-1] if stack else None
        if top is not None and top[0]() is self:
            _, run, listeners, held = top
            rest = stack[:-1]
        else:
            run, listeners, held, rest = self._find(stack)
        self.open_runs -= 1
        _open_runs.set(rest)  # forgotten before it closes: a Ctrl-C costs the report at most
        try:
            self._stop(run, listeners, exc)
        finally:
            if held:
                try:
                    release(held)
                except KeyboardInterrupt:
                    state.noted_at = None
                    raise
            if state.noted_at is not None and due():
                merged = isinstance(exc, KeyboardInterrupt)  # the block's own stands for it
                state.noted_at = None
                if not merged:
                    raise KeyboardInterrupt  # held back while the scope closed: raise it now

    def _find(self, stack: _Stack) -> tuple[Any, tuple[Listener, ...], bool, _Stack]:
        """This scope's innermost run in ``stack``, and the stack without it."""
        for i in range(len(stack) - 1, -1, -1):
            if stack[i][0]() is self:
                _, run, listeners, held = stack[i]
                return run, listeners, held, stack[:i] + stack[i + 1 :]
        msg = f"{type(self).__name__} is not open in this thread or task"
        raise RuntimeError(msg)

    def running(self) -> _Running[T, R]:
        """One run as its own context manager, to enter in one place and exit in another.

        Ctrl-C is not held back for it: whoever enters it and exits it does that around
        both (:func:`~resmagic.scopes.interrupts.hold`), as the cell runner does.
        """
        return _Running(self)

    def _start(self) -> tuple[Any, T, tuple[Listener, ...]]:
        listeners = enclosing_listeners()
        run, value = self._open()
        return run, cast("T", value), listeners

    def _stop(self, run: Any, listeners: tuple[Listener, ...], exc: BaseException | None) -> None:
        report = self._close(run, exc)
        if self.ranks is not None:  # issue 28: after the rank's own figures, before publishing
            report = self.ranks.gather(report)
        self._finish(report, listeners)
        self._after(run)

    def _after(self, run: Any) -> None:
        """After the report is out: raise what closing failed with (a refused commit)."""

    def _finish(self, report: R, listeners: tuple[Listener, ...] = ()) -> None:
        self.report = report
        publish(report, listeners)

    @staticmethod
    def common(started_at: float, duration_s: float, exc: BaseException | None) -> dict[str, Any]:
        """The fields every report has: status and error text from ``exc``, the cell number."""
        return {
            "status": status_of(exc),
            "duration_s": duration_s,
            "started_at": started_at,
            "cell": current_cell(),
            "error": describe_error(exc),
        }

    def _open(self) -> tuple[Any, object]:
        raise NotImplementedError

    def _close(self, run: Any, exc: BaseException | None) -> R:
        raise NotImplementedError

    def _fresh(self) -> Scope[T, R]:
        clone = copy.copy(self)
        clone.report = None
        clone.open_runs = 0
        return clone

    def __call__(self, func: F) -> F:
        """Use the scope as a decorator: every call of ``func`` runs inside a fresh copy."""
        if not self.decorates:
            msg = (
                f"{type(self).__name__} cannot decorate a function: the function would have no"
                f" way to use what it yields; write `with {type(self).__name__}(...) as ...:`"
                " inside the function instead"
            )
            raise TypeError(msg)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                scope = self._fresh()
                try:
                    with scope:
                        return await func(*args, **kwargs)
                finally:
                    self.report = scope.report

            return cast("F", run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            scope = self._fresh()
            try:
                with scope:
                    return func(*args, **kwargs)
            finally:
                self.report = scope.report

        return cast("F", run)


class _Running(Generic[T, R]):
    """One run of a scope, held by this object: enter and exit may be in different contexts."""

    def __init__(self, scope: Scope[T, R]) -> None:
        self.scope = scope
        self._state: tuple[Any, tuple[Listener, ...]] | None = None

    @protect
    def __enter__(self) -> T:
        # Whoever enters and exits a run in different places holds Ctrl-C back around both
        # (the cell runner does, in IPython's hooks): a Ctrl-C that lands on the return of
        # _start() would lose the run.
        run, value, listeners = self.scope._start()
        self._state = (run, listeners)
        self.scope.open_runs += 1
        if state.noted_at is not None and due():
            interrupt = KeyboardInterrupt()  # it arrived while opening: close, then raise it
            try:
                self.__exit__(KeyboardInterrupt, interrupt, None)
            finally:
                state.noted_at = None  # also when a new Ctrl-C is raised as it returns
            raise interrupt
        return value

    @protect
    def __exit__(self, *exc_info: Any) -> None:
        state_, self._state = self._state, None
        if state_ is None:
            msg = "this run was never entered, or has closed already"
            raise RuntimeError(msg)
        self.scope.open_runs -= 1
        try:
            self.scope._stop(state_[0], state_[1], exc_info[1])
        finally:
            if state.noted_at is not None and due():
                merged = isinstance(exc_info[1], KeyboardInterrupt)
                state.noted_at = None
                if not merged:
                    raise KeyboardInterrupt  # held back while the scope closed: raise it now
