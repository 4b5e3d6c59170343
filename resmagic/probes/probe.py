"""What a memory source is to the rest of resmagic: the :class:`Probe` protocol.

``gpu_scope``, ``%resmagic status`` and the status bar's snapshot all loop over one table of
probes (:data:`resmagic.probes.table.PROBES`). Each probe names its source, says whether it
gives a host-like row or one row per GPU, whether its rows count other processes' memory
too, which exact peak counter it has (or none: its peak is sampled), says in words whether
it works here, and reads without ever raising: a driver that fails mid-read ("GPU is lost")
gives no rows and says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from resmagic.probes.reading import DeviceMemory, ProbeStatus

if TYPE_CHECKING:
    from resmagic.probes.peaks import PeakCounter, PeakStack

__all__ = ["Kind", "Probe", "Wants", "describe_failure", "guarded"]

Wants = Callable[[int], bool]
"""Whether a scope measures the GPU of this CUDA index."""

Kind = Literal["host", "gpu"]
"""A probe's rows: ``"host"``, one host-like row (its :attr:`Probe.row`); ``"gpu"``, a row
per GPU (``cuda:N``)."""


def describe_failure(source: str, exc: BaseException) -> str:
    """``"NVML: reading failed (NVMLError: GPU is lost)"``: a note for the report."""
    text = str(exc).strip().splitlines()
    detail = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return f"{source}: reading failed ({detail})"


def guarded(
    source: str, read: Callable[[], list[DeviceMemory]]
) -> tuple[list[DeviceMemory], str | None]:
    """``(rows, None)``, or ``([], why)`` when ``read`` raised: a probe's read never raises."""
    try:
        return read(), None
    except Exception as exc:  # a driver failing mid-read: no numbers, and why
        return [], describe_failure(source, exc)


class Probe(Protocol):
    """A memory source as a scope, ``%resmagic status`` and the status bar see it."""

    source: str
    """Who says so: ``"RSS"``, ``"torch allocator"``, ``"NVML"``."""

    kind: Kind
    """Host-like (one row, named :attr:`row`) or GPU (a row per device)."""

    row: str | None
    """The one row a host-like probe gives (``"host"``, ``"workers"``, ``"container"``)."""

    wide: bool
    """True when its rows count other processes' memory too (NVML's device-wide use, child
    processes, the cgroup): never "what this block left held"."""

    @property
    def counter(self) -> PeakCounter | None:
        """The exact peak counter here, or None: this source's peak is sampled."""
        ...

    @property
    def peak_stack(self) -> PeakStack | None:
        """This process's nestable peak counter for the running cell (the status bar), if any."""
        ...

    def present(self) -> bool:
        """True when a read may give rows now (the host always; a GPU source when ready)."""
        ...

    def visible(self) -> int:
        """How many GPUs it sees, creating no CUDA context (0 for a host-like probe)."""
        ...

    def status(self) -> ProbeStatus:
        """Whether the source works here and, if not, why, in words."""
        ...

    def read(self, wants: Wants, *, peak: bool = True) -> tuple[list[DeviceMemory], str | None]:
        """Rows for the wanted devices, and None, or no rows and what failed; never raises."""
        ...
