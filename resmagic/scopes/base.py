"""What every scope shares: ``with`` and decorator use, one report per run, published on close."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar, cast

from resmagic.report import Report, publish

__all__ = ["Scope"]

T = TypeVar("T")
R = TypeVar("R", bound=Report)
F = TypeVar("F", bound=Callable[..., Any])


class Scope(Generic[T, R]):
    """A context manager that is also a decorator, and reports when it closes.

    Subclasses implement :meth:`_open` (returns the per-run state and the ``as`` value) and
    :meth:`_close` (returns the report, or None to publish later). Per-run state never lives
    on ``self``: a decorated function runs each call in a fresh copy, so recursion and
    threads each get their own start time, and ``with`` on one object may nest.
    """

    report: R | None
    """The report of the last run that closed; None before that."""

    def __init__(self) -> None:
        self.report = None
        self._runs: list[Any] = []

    def __enter__(self) -> T:
        run, value = self._open()
        self._runs.append(run)
        return cast("T", value)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        run = self._runs.pop()
        report = self._close(run, exc)
        if report is not None:
            self._finish(report)

    def _finish(self, report: R) -> None:
        self.report = report
        publish(report)

    def _open(self) -> tuple[Any, object]:
        raise NotImplementedError

    def _close(self, run: Any, exc: BaseException | None) -> R | None:
        raise NotImplementedError

    def _fresh(self) -> Scope[T, R]:
        clone = copy.copy(self)
        clone.report = None
        clone._runs = []
        return clone

    def __call__(self, func: F) -> F:
        """Use the scope as a decorator: every call of ``func`` runs inside a fresh copy."""
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
