"""``timed``: wall and CPU time of a block, CUDA-synchronised when CUDA is in use."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from resmagic.errors import OptionError
from resmagic.probes import torch_cuda
from resmagic.report import TimingReport
from resmagic.scopes.base import Scope

__all__ = ["timed"]

SyncCuda = bool | Literal["auto"]


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

    Args:
        label: a name for the report, e.g. ``"train"``.
        sync_cuda: ``"auto"``, True or False, as above.

    Examples:
        >>> with timed("load") as t:
        ...     data = list(range(1000))
        >>> t.report.wall_s > 0
        True
        >>> @timed("step")
        ... def step(): ...
    """

    def __init__(self, label: str | None = None, *, sync_cuda: SyncCuda = "auto") -> None:
        super().__init__()
        if sync_cuda not in (True, False, "auto"):
            msg = f"sync_cuda must be True, False or 'auto', not {sync_cuda!r}"
            raise OptionError(msg)
        self.label = label
        self.sync_cuda = sync_cuda

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
