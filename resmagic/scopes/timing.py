"""``timed``: wall and CPU time of a block, CUDA-synchronised when CUDA is in use."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from resmagic import totals
from resmagic.errors import OptionError
from resmagic.probes import torch_cuda
from resmagic.report import TimingReport
from resmagic.scopes.base import Scope
from resmagic.scopes.ranked import ranks_of

__all__ = ["timed"]

SyncCuda = bool | Literal["auto"]
Keep = Literal["each", "totals"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class _Run:
    started_at: float
    wall0: float
    cpu0: float
    synced: bool


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
    # that a Ctrl-C cannot leave open (scopes/base.py).
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
        super().__init__()
        if sync_cuda not in (True, False, "auto"):
            msg = f"sync_cuda must be True, False or 'auto', not {sync_cuda!r}"
            raise OptionError(msg)
        if keep not in ("each", "totals"):
            msg = f"keep must be 'each' or 'totals', not {keep!r}"
            raise OptionError(msg)
        self.label = label
        self.sync_cuda = sync_cuda
        self.keep = keep
        if ranks or ranks_timeout_s is not None:
            self.ranks = ranks_of(ranks, ranks_timeout_s, "timed", label)

    def __call__(self, func: F) -> F:
        """Time every call of ``func``; unlabelled, the runs take the function's name."""
        if self.label is not None:
            return super().__call__(func)
        named = copy.copy(self)
        name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
        # "train.<locals>.step" reads as "step": the name the user wrote, with its class.
        named.label = name.rsplit("<locals>.", 1)[-1] if name else None
        return Scope.__call__(named, func)

    def _finish(self, report: TimingReport, listeners: tuple[Any, ...] = ()) -> None:
        totals.add(report)
        if self.keep == "each":
            super()._finish(report, listeners)
        else:
            self.report = report

    def _open(self) -> tuple[_Run, timed]:
        synced = bool(self.sync_cuda) and torch_cuda.synchronize()
        return _Run(time.time(), time.perf_counter(), time.process_time(), synced), self

    def _close(self, run: _Run, exc: BaseException | None) -> TimingReport:
        synced = bool(self.sync_cuda) and torch_cuda.synchronize()
        wall = time.perf_counter() - run.wall0
        cpu = time.process_time() - run.cpu0
        return TimingReport(
            **self.common(run.started_at, wall, exc),
            label=self.label,
            wall_s=wall,
            cpu_s=cpu,
            cuda_synced=synced or run.synced,
        )
