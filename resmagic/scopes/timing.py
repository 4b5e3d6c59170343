"""``timed``: wall and CPU time of a block, CUDA-synchronised when CUDA is in use."""

from __future__ import annotations

import copy
import functools
import inspect
import sys
import time
from _thread import get_ident
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, TypeVar, cast

from resmagic.bus import current_cell, publish
from resmagic.errors import OptionError
from resmagic.probes import torch_cuda
from resmagic.report import Status, TimingReport, describe_error, status_of
from resmagic.report_makers import timing_report
from resmagic.scopes.base import Listener, Scope, listeners_here, open_in, runs_here
from resmagic.scopes.ranked import ranks_of
from resmagic.totals import count

__all__ = ["timed"]

SyncCuda = bool | Literal["auto"]
Keep = Literal["each", "totals"]
F = TypeVar("F", bound=Callable[..., Any])

_modules = sys.modules
_perf_counter = time.perf_counter
_process_time = time.process_time
_time = time.time

# A run: (started_at, perf_counter at open, process_time at open, synced at open, its
# listeners, the thread that opened it).
_Run = tuple[float, float, float, bool, tuple[Listener, ...], int]

# A run kept as totals only: its report's fields, built into a TimingReport when read.
_Fields = tuple[Status, float, float, "int | None", "str | None", "str | None", float, float, bool]


def _sync(sync_cuda: SyncCuda) -> bool:
    """``torch.cuda.synchronize`` on every device, only once torch has initialised CUDA."""
    if not sync_cuda or (torch_cuda.backend is None and "torch" not in _modules):
        return False  # torch never imported: nothing to synchronise, no call (issue 26)
    return torch_cuda.synchronize()


class timed(Scope["timed", TimingReport]):
    """Measure wall time (``perf_counter``) and CPU time (``process_time``) of a block.

    CUDA work is asynchronous: a block that launches kernels returns before they finish. With
    ``sync_cuda="auto"`` (the default) the scope calls ``torch.cuda.synchronize`` on every
    device at both ends, but only when torch has initialised CUDA, so it never creates a
    context. ``sync_cuda=False`` never synchronises; ``True`` synchronises whenever CUDA is
    initialised, like ``"auto"``.

    Every run also counts toward its label's totals (``resmagic.timings()``: count, total,
    mean, max). A function called thousands of times is better kept as totals only:
    ``keep="totals"`` makes no report per run (no history entry, no log record).

    Args:
        label: a name for the report, e.g. ``"train"``; as a decorator, by default the
            function's qualified name.
        sync_cuda: ``"auto"``, True or False, as above.
        keep: ``"each"`` (a report per run, the default) or ``"totals"`` (totals only).
        ranks: inside a ``torch.distributed`` process group, gather every rank's wall time
            into rank 0's report (``report.ranks``: :class:`~resmagic.ranktable.RankTable`,
            ``slowest()``); every rank must open its ranks scopes in the same order, as with
            collectives. No gather, and no error, where no group is initialised.
        ranks_timeout_s: how long rank 0 waits for the others' records before it names them
            missing; None: ``settings.ranks_timeout_s`` (60 s).

    Examples:
        >>> with timed("load") as t:
        ...     data = list(range(1000))
        >>> t.report.wall_s > 0
        True
        >>> @timed("step", keep="totals")
        ... def step(): ...
    """

    # Opening and closing change nothing outside the run, and a held-back Ctrl-C costs a
    # signal-handler swap (~1 us) per block; the run is recorded and dropped in an order
    # that a Ctrl-C cannot leave open (scopes/base.py, and __enter__ below).
    defers_interrupts = False

    def __init__(
        self,
        label: str | None = None,
        *,
        sync_cuda: SyncCuda = "auto",
        keep: Keep = "each",
        ranks: bool = False,
        ranks_timeout_s: float | None = None,
    ) -> None:
        # Scope.__init__'s two fields set here: a timed is made per block (issue 26).
        if sync_cuda != "auto" and sync_cuda is not True and sync_cuda is not False:
            msg = f"sync_cuda must be True, False or 'auto', not {sync_cuda!r}"
            raise OptionError(msg)
        if keep != "each" and keep != "totals":
            msg = f"keep must be 'each' or 'totals', not {keep!r}"
            raise OptionError(msg)
        if label is not None and not isinstance(label, str):
            raise _bad_label(label)
        self.label = label
        self.sync_cuda = sync_cuda
        self.keep = keep
        if ranks is not False or ranks_timeout_s is not None:  # ranks_of checks both
            self.ranks = ranks_of(ranks, ranks_timeout_s, "timed", label)
        self.open_runs = 0
        self._last: TimingReport | _Fields | None = None

    @property  # Scope.report, read-write, built when read
    def report(self) -> TimingReport | None:
        """The report of the last run that closed; None before that.

        With ``keep="totals"`` it is made when read, from the fields the run kept.
        """
        last = self._last
        if last is None or isinstance(last, TimingReport):
            return last
        built = timing_report(*last)
        self._last = built
        return built

    @report.setter
    def report(self, value: TimingReport | None) -> None:
        self._last = value

    # -- with: the run on the object while it is open once --------------------------------
    #
    # The common case, one run of the object at a time, keeps its run in the instance's
    # ``_run`` (0.2 us) instead of the context variable's stack (1.2 us: issue 26). A second
    # run while one is open there (another thread or task, or ``with`` nested on the object)
    # takes the stack, as every other scope does; a run is on the stack exactly when its
    # object is in the stack of this thread or task, which __exit__ looks at first. The slot
    # is claimed with one ``dict.setdefault`` (atomic: two threads entering at once cannot
    # both take it) and freed only by the thread that holds it.

    _run: _Run | None = None  # the class's: the instance's own exists only while claimed

    def __enter__(self) -> timed:
        stack = runs_here()
        # The stack when this object has a run open, or when the innermost run's object is
        # gone (an exit a Ctrl-C skipped: Scope.__enter__ drops it).
        # A ranks scope takes the stack: Scope.__exit__ raises a Ctrl-C its gather held back.
        if (
            self._run is None
            and self.ranks is None
            and not (stack and (stack[-1][0]() is None or open_in(stack, self)))
        ):
            listeners = listeners_here()
            synced = (
                # Torch never imported: nothing to synchronise, and no call (issue 26).
                (torch_cuda.backend is not None or "torch" in _modules)
                and self.sync_cuda is not False
                and torch_cuda.synchronize()
            )
            started_at = _time()
            cpu0 = _process_time()
            run = (started_at, _perf_counter(), cpu0, synced is True, listeners, get_ident())
            # A Ctrl-C that lands before the claim leaves nothing; one after it leaves the
            # run on the object, like an __exit__ it skipped: that object's later runs take
            # the stack, and its __exit__ still finds the run by the thread that holds it.
            self.open_runs += 1
            if self.__dict__.setdefault("_run", run) is run:
                return self
            self.open_runs -= 1  # another thread claimed the slot since the test above
        return Scope.__enter__(self)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        run = self._run
        if run is None or run[5] != get_ident():
            return Scope.__exit__(self, exc_type, exc, tb)
        stack = runs_here()
        if stack and open_in(stack, self):
            return Scope.__exit__(self, exc_type, exc, tb)
        del self._run  # forgotten before it closes: a Ctrl-C costs the report at most
        self.open_runs -= 1
        synced = (
            (torch_cuda.backend is not None or "torch" in _modules)
            and self.sync_cuda is not False
            and torch_cuda.synchronize()
        ) is True or run[3]
        wall = _perf_counter() - run[1]
        cpu = _process_time() - run[2]
        self._done(run[0], wall, cpu, synced, exc, run[4])
        return None

    def _done(
        self,
        started_at: float,
        wall: float,
        cpu: float,
        synced: bool,
        exc: BaseException | None,
        listeners: tuple[Listener, ...],
    ) -> None:
        """Count the run, and keep or publish its report."""
        label = self.label
        count(label, wall, cpu, exc is not None)
        cell = current_cell()
        status: Status = "ok"
        error = None
        if exc is not None:
            status, error = status_of(exc), describe_error(exc)
        if self.ranks is not None:  # issue 28: every rank's wall, before it is kept or published
            report = timing_report(status, wall, started_at, cell, error, label, wall, cpu, synced)
            report = self.ranks.gather(report)
            self._last = report
            if self.keep == "each":
                publish(report, listeners)
        elif self.keep == "each":
            report = timing_report(status, wall, started_at, cell, error, label, wall, cpu, synced)
            self._last = report
            publish(report, listeners)
        else:  # built into a report only if .report is read
            self._last = (status, wall, started_at, cell, error, label, wall, cpu, synced)

    # -- the stack's runs, and running(): the Scope protocol -------------------------------

    def _stop(self, run: _Run, listeners: tuple[Listener, ...], exc: BaseException | None) -> None:
        # The stack's runs and running() (a cell's layer) close as the fast slot does.
        synced = _sync(self.sync_cuda) or run[3]
        wall = _perf_counter() - run[1]
        cpu = _process_time() - run[2]
        self._done(run[0], wall, cpu, synced, exc, listeners)

    def _open(self) -> tuple[_Run, timed]:
        synced = _sync(self.sync_cuda)
        run = (_time(), _perf_counter(), _process_time(), synced, (), get_ident())
        return run, self

    def _close(self, run: _Run, exc: BaseException | None) -> TimingReport:
        synced = _sync(self.sync_cuda)
        wall = _perf_counter() - run[1]
        cpu = _process_time() - run[2]
        return TimingReport(
            **self.common(run[0], wall, exc),
            label=self.label,
            wall_s=wall,
            cpu_s=cpu,
            cuda_synced=synced or run[3],
        )

    # -- the decorator: each call's run in the wrapper's frame ----------------------------

    def __call__(self, func: F) -> F:
        """Time every call of ``func``; unlabelled, the runs take the function's name."""
        if self.label is not None:
            return self._wrap(func)
        named = copy.copy(self)
        named.__dict__.pop("_run", None)  # a run open on self is not the copy's
        named.open_runs = 0
        name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
        # "train.<locals>.step" reads as "step": the name the user wrote, with its class.
        named.label = name.rsplit("<locals>.", 1)[-1] if name else None
        return named._wrap(func)

    def _wrap(self, func: F) -> F:
        """``func`` timed: each call keeps its run in its own frame (no copy of the scope)."""
        if self.ranks is not None:
            return Scope.__call__(self, func)  # through __enter__/__exit__, as a with block
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                listeners = listeners_here()
                synced = _sync(self.sync_cuda)
                started_at, cpu0, wall0 = _time(), _process_time(), _perf_counter()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as exc:
                    self._call_done(started_at, wall0, cpu0, synced, exc, listeners)
                    raise
                self._call_done(started_at, wall0, cpu0, synced, None, listeners)
                return result

            return cast("F", run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            listeners = listeners_here()
            # The torch test inline, not in _sync: a call less at each end (issue 26).
            synced = (torch_cuda.backend is not None or "torch" in _modules) and _sync(
                self.sync_cuda
            )
            started_at, cpu0, wall0 = _time(), _process_time(), _perf_counter()
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                self._call_done(started_at, wall0, cpu0, synced, exc, listeners)
                raise
            if (torch_cuda.backend is not None or "torch" in _modules) and _sync(self.sync_cuda):
                synced = True
            wall = _perf_counter() - wall0
            cpu = _process_time() - cpu0
            self._done(started_at, wall, cpu, synced, None, listeners)
            return result

        return cast("F", run)

    def _call_done(
        self,
        started_at: float,
        wall0: float,
        cpu0: float,
        synced: bool,
        exc: BaseException | None,
        listeners: tuple[Listener, ...],
    ) -> None:
        synced = _sync(self.sync_cuda) or synced
        wall = _perf_counter() - wall0
        cpu = _process_time() - cpu0
        self._done(started_at, wall, cpu, synced, exc, listeners)


def _bad_label(label: object) -> Exception:
    """The error for a label that is not a string: ``@timed`` without its parentheses."""
    if callable(label):
        return TypeError(
            "timed takes a label, not a function: decorate with @timed() or @timed('label')"
        )
    return OptionError(f"label must be a string or None, not {type(label).__name__}")
