"""The memory guard: stop a running block before the container's OOM killer kills the process.

While a :class:`Guard` is on, the sampler compares the cgroup's working set (what the OOM
killer goes by) with the limit each ``settings.sample_interval``; past the threshold it raises
:class:`~resmagic.errors.MemoryLimitError` in the thread that started the guard, and again at
each sample while the working set stays past it and the block has not ended: a stop that
something caught and ignored is followed by another (reliability 2026-12-06 #1). The exception
is raised at a line start of the user's own code (:mod:`resmagic.delivery`): never in a
library that would swallow it (``logging`` hands every error to ``handleError``), never in
IPython's, the kernel's or resmagic's own code, never where it would skip a cleanup (between
``lock.acquire()`` and its ``try:``, in a ``finally`` body, at a ``with``'s exit, in an
``__exit__``) and never while the thread handles an exception; it waits for the next such
line instead. A loop that allocates step by step stops with its variables kept, but a single
allocation that jumps past the limit between two samples (one 20 GiB ``torch.empty``) is
still killed first, and so is a thread stuck in C code or in a library that never returns to
the user's code. A block that starts above the threshold (memory earlier cells hold) is
stopped halfway from there to the limit instead.
"""

from __future__ import annotations

import sys
import threading
import time
from types import FrameType

from resmagic.config import settings
from resmagic.errors import MemoryLimitError, OptionError
from resmagic.probes import cgroup
from resmagic.probes.reading import DeviceMemory
from resmagic.sampler import Watch, sampler
from resmagic.units import format_bytes

__all__ = ["DEFAULT_AT", "Guard", "parse_fraction"]

DEFAULT_AT = 0.9
"""The share of the limit at which a guard fires unless told otherwise."""

_lock = threading.Lock()
_on: dict[int, list[Guard]] = {}  # thread id -> its guards that are on


def parse_fraction(value: object) -> float:
    """``0.9``, ``"0.9"``, ``"90"`` or ``"90%"`` as the fraction 0.9; OptionError otherwise."""
    text = str(value).strip()
    try:
        number = float(text.removesuffix("%"))
    except ValueError:
        number = -1.0
    if text.endswith("%") or number > 1:
        number /= 100
    if not 0 < number < 1:
        msg = f"the guard takes a share of the limit, e.g. 90% or 0.9, not {value!r}"
        raise OptionError(msg)
    return number


class Guard:
    """Watch the container's working set while on, and stop ``thread`` past ``at`` of the limit.

    Args:
        at: the share of the limit at which to stop the thread that calls :meth:`start`
            (0.9, ``"90%"``).
        cell: what is running, in words, for the message (``"cell 12"``).

    Raises:
        OptionError: ``at`` is not a share between 0 and 1.
    """

    def __init__(self, at: float = DEFAULT_AT, *, cell: str = "the block") -> None:
        self.at = parse_fraction(at)
        self.cell = cell
        self.limit_bytes = cgroup.limit_bytes()
        self.fired = False
        self.thread = 0
        self.threshold_bytes = 0
        self._watch: Watch | None = None
        self._sent: type[MemoryLimitError] | None = None
        self._anchor: FrameType | None = None
        self._seen: tuple[float, int] | None = None  # the last sample: (monotonic, bytes)

    @property
    def armed(self) -> bool:
        """True when there is a limit to guard (a memory cgroup with a limit)."""
        return self.limit_bytes is not None

    def start(self) -> Guard:
        """Start watching for the calling thread; does nothing when there is no limit."""
        limit = self.limit_bytes
        if limit is None or self._watch is not None:
            return self
        from resmagic import delivery  # here, not in the sampler thread as the stop fires

        delivery.prepare()
        # A block that starts above the threshold (what earlier cells hold, kept by an
        # earlier stop) would be stopped at once, and so would every cell after it: such a
        # block is stopped halfway from where it started to the limit instead.
        self.threshold_bytes = int(self.at * limit)
        start = cgroup.working_set_bytes() or 0
        if start >= self.threshold_bytes:
            self.threshold_bytes = start + (limit - start) // 2
        self._seen = (time.monotonic(), start)
        self.thread = threading.get_ident()
        self._anchor = _block_frame(sys._getframe(1))
        with _lock:
            _on.setdefault(self.thread, []).append(self)
        try:
            self._watch = sampler.add(Watch(self.check, prompt=True))
        except BaseException:
            # No sampler (no thread could start): stop() could not undo a half start, and the
            # registry would keep this guard, and through its anchor the block's locals.
            with _lock:
                self._leave()
            self._anchor = None
            raise
        return self

    def stop(self) -> None:
        """Stop watching; an exception fired but not yet delivered is withdrawn."""
        watch, self._watch = self._watch, None
        if watch is None:
            return
        sampler.remove(watch)
        with _lock:
            self._leave()
            if self._sent is not None:
                from resmagic import delivery

                delivery.withdraw(self.thread, self._sent)  # a no-op once it was raised
        self._anchor = None

    def _leave(self) -> None:
        """Out of the guards of its thread (the caller holds ``_lock``)."""
        guards = _on.get(self.thread, [])
        if self in guards:
            guards.remove(self)
        if not guards:
            _on.pop(self.thread, None)

    def check(self) -> list[DeviceMemory]:
        """One sample (the sampler calls it): past the threshold, send a stop if none waits."""
        limit, used = self.limit_bytes, cgroup.working_set_bytes()
        if limit is None or used is None:
            return []
        if used < self.threshold_bytes:
            self._sample_sooner(used)
            return []
        from resmagic import delivery  # imported by start(): `import resmagic` does not pay

        with _lock:
            if self not in _on.get(self.thread, []):
                return []  # stopped meanwhile
            if delivery.waiting(self.thread):
                # One stop at a time per thread (this guard's or another's): arm it again.
                # Past halfway to the limit, the user's code a library calls back will do
                # (a loop inside a library: a trainer that calls the user's forward).
                if used >= self.threshold_bytes + (limit - self.threshold_bytes) // 2:
                    delivery.relax(self.thread)
                delivery.rearm(self.thread)
                return []
            # The last stop (if any) was raised and the block is still on: send another.
            self._sent = self._error(limit, used)
            self.fired = True
            delivery.send(self.thread, self._sent, self._anchor)
        return []

    def _sample_sooner(self, used: int) -> None:
        # At the rate it grew since the last sample, will the working set pass the threshold
        # before the next one? Then sample when it should (reliability 2026-12-06 #1: a
        # loop allocating 10 MiB every 4 ms went from below 60% to the OOM killer between
        # two samples in 6 of 30 trials).
        now = time.monotonic()
        seen, self._seen = self._seen, (now, used)
        if seen is None or used <= seen[1] or now <= seen[0]:
            return
        rate = (used - seen[1]) / (now - seen[0])
        ahead = (self.threshold_bytes - used) / rate
        if ahead < settings.sample_interval:
            sampler.soon(max(ahead, 0.005))

    def _error(self, limit: int, used: int) -> type[MemoryLimitError]:
        share = self.threshold_bytes / limit
        message = (
            f"resmagic's memory guard stopped {self.cell}: the container's working set"
            f" {format_bytes(used)} passed {share:.0%} of its {format_bytes(limit)} limit."
            " Stopped before the OOM killer, so the variables are kept: del what you no"
            " longer need (%resmagic guard off runs cells to the limit)"
        )
        attrs = {"message": message, "limit_bytes": limit, "used_bytes": used, "cell": self.cell}
        # The exception is raised by calling its class with no arguments.
        attrs["__module__"] = "resmagic.errors"
        return type("MemoryLimitError", (MemoryLimitError,), attrs)


def _block_frame(caller: FrameType) -> FrameType | None:
    """The user's frame the guarded block runs in (its ``with``), or None (a cell's guard)."""
    from resmagic.delivery.where import FRAMEWORK, frame_kind, is_user_frame

    frame: FrameType | None = caller
    while frame is not None and frame_kind(frame) == FRAMEWORK:
        frame = frame.f_back
    return frame if frame is not None and is_user_frame(frame) else None
