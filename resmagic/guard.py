"""The memory guard: stop a running block before the container's OOM killer kills the process.

While a :class:`Guard` is on, the sampler compares the cgroup's working set (what the OOM
killer goes by) with the limit each ``settings.sample_interval``; past the threshold it raises
:class:`~resmagic.errors.MemoryLimitError` in the thread that started the guard, once. The
exception arrives between two bytecodes of that thread, like Ctrl-C: a loop that allocates
step by step stops with its variables kept, but a single allocation that jumps past the limit
between two samples (one 20 GiB ``torch.empty``) is still killed first, and so is a thread
stuck in C code (an exception cannot be delivered there). A block that starts above the
threshold (memory earlier cells hold) is stopped halfway from there to the limit instead.
The exception never lands in IPython's, the kernel's or resmagic's own code (a cell's
bookkeeping): while the thread runs there, the guard waits for the next sample.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

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

    @property
    def armed(self) -> bool:
        """True when there is a limit to guard (a memory cgroup with a limit)."""
        return self.limit_bytes is not None

    def start(self) -> Guard:
        """Start watching for the calling thread; does nothing when there is no limit."""
        limit = self.limit_bytes
        if limit is None or self._watch is not None:
            return self
        # A block that starts above the threshold (what earlier cells hold, kept by an
        # earlier stop) would be stopped at once, and so would every cell after it: such a
        # block is stopped halfway from where it started to the limit instead.
        self.threshold_bytes = int(self.at * limit)
        start = cgroup.working_set_bytes() or 0
        if start >= self.threshold_bytes:
            self.threshold_bytes = start + (limit - start) // 2
        self.thread = threading.get_ident()
        with _lock:
            _on.setdefault(self.thread, []).append(self)
        self._watch = sampler.add(Watch(self.check))
        return self

    def stop(self) -> None:
        """Stop watching; an exception fired but not yet delivered is withdrawn."""
        watch, self._watch = self._watch, None
        if watch is None:
            return
        sampler.remove(watch)
        with _lock:
            guards = _on.get(self.thread, [])
            if self in guards:
                guards.remove(self)
            if not guards:
                _on.pop(self.thread, None)
            if self.fired:
                _raise_in(self.thread, None)  # a no-op once it was delivered

    def check(self) -> list[DeviceMemory]:
        """One sample (the sampler calls it): fire when the working set is past the threshold."""
        limit, used = self.limit_bytes, cgroup.working_set_bytes()
        if limit is None or used is None or used < self.threshold_bytes or self.fired:
            return []
        if _in_framework(self.thread):
            return []  # the next sample: the block's code will run again, or it has ended
        with _lock:
            if self not in _on.get(self.thread, []) or self.fired:
                return []  # stopped meanwhile, or another guard of the thread fired
            for guard in _on[self.thread]:
                guard.fired = True  # one exception per thread: never one in its handler
            _raise_in(self.thread, self._error(limit, used))
        return []

    def _error(self, limit: int, used: int) -> type[MemoryLimitError]:
        share = self.threshold_bytes / limit
        message = (
            f"resmagic's memory guard stopped {self.cell}: the container's working set"
            f" {format_bytes(used)} passed {share:.0%} of its {format_bytes(limit)} limit."
            " Stopped before the OOM killer, so the variables are kept: del what you no"
            " longer need (%resmagic guard off runs cells to the limit)"
        )
        attrs = {"message": message, "limit_bytes": limit, "used_bytes": used, "cell": self.cell}
        # CPython raises an asynchronous exception by calling its class with no arguments.
        attrs["__module__"] = "resmagic.errors"
        return type("MemoryLimitError", (MemoryLimitError,), attrs)


# Code an exception must never land in: it would break a cell's bookkeeping, not the cell.
_FRAMEWORK = ("IPython", "ipykernel", "jupyter_client", "zmq", "tornado", "asyncio", "resmagic")


def _in_framework(thread: int) -> bool:
    """True while ``thread`` runs IPython's, the kernel's or resmagic's own Python code."""
    frame = sys._current_frames().get(thread)
    if frame is None:
        return True  # the thread is gone
    where = os.path.abspath(frame.f_code.co_filename)
    for name in _FRAMEWORK:
        module = sys.modules.get(name)
        folder = os.path.dirname(getattr(module, "__file__", None) or "") if module else ""
        if folder and where.startswith(folder + os.sep):
            return True
    return False


def _raise_in(thread: int, exc: type[BaseException] | None) -> None:
    """Raise ``exc`` in ``thread`` at its next bytecode (None: withdraw a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exc) if exc is not None else None
    )
