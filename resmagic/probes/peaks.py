"""Nested peaks over process-wide counters that can only be reset, never forked.

The torch allocator keeps one peak per device and the kernel one ``VmHWM`` per process: a
scope that resets either wipes the peak of every scope around it (a stacked magic, watch
mode, the user's own ``with gpu_scope()``). A :class:`PeakStack` shares one counter between
nested scopes: on entry it folds the counter's peak so far into the enclosing scope's running
maximum, then resets; on exit it reads this scope's peak and folds it into the parent.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Protocol

from resmagic.probes import cgroup, host, torch_cuda

__all__ = ["OuterPeak", "PeakCounter", "PeakStack", "container_peaks", "host_peaks", "torch_peaks"]

Peaks = dict[str, int]


def _fold(into: Peaks, values: Peaks) -> None:
    if not into:
        into.update(values)  # a fresh frame (the usual one at its pop): nothing to compare
        return
    for name, value in values.items():
        if value > into.get(name, -1):
            into[name] = value


class PeakCounter(Protocol):
    """What a scope asks of an exact peak counter: a frame per scope, its peak at the end."""

    def push(self) -> Peaks:
        """Start a scope's peak; returns its frame, to hand back to :meth:`pop`."""
        ...

    def pop(self, frame: Peaks) -> Peaks:
        """End the scope of ``frame``: its peak per device; empty where not known exactly."""
        ...


class PeakStack:
    """One process-wide peak counter shared by nested scopes, each seeing its own exact peak.

    Args:
        read: returns the counter's peak since the last reset, per device name.
        reset: resets the counter to the current value.
    """

    def __init__(self, read: Callable[[], Peaks], reset: Callable[[], object]) -> None:
        self._read = read
        self._reset = reset
        self._lock = threading.Lock()
        self._frames: list[Peaks] = []

    def push(self) -> Peaks:
        """Start a scope's peak; returns its frame, to hand back to :meth:`pop`."""
        frame: Peaks = {}
        with self._lock:
            if self._frames:
                _fold(self._frames[-1], self._read())
            self._reset()
            self._frames.append(frame)
        return frame

    def pop(self, frame: Peaks) -> Peaks:
        """End the scope of ``frame``: its peak since :meth:`push`, per device, folded upward."""
        with self._lock:
            frames = self._frames
            try:
                _fold(frame, self._read())
            finally:
                # Scopes from different threads may end out of order: remove this frame
                # wherever it is and fold into the one that was below it; also when the
                # counter could not be read (the caller says so), so no frame is left behind.
                # The usual frame is the only one: no search, nothing below (issue 26, G8).
                if len(frames) == 1 and frames[0] is frame:
                    frames.clear()
                else:
                    index = next(i for i, f in enumerate(frames) if f is frame)
                    del frames[index]
                    if index > 0:
                        _fold(frames[index - 1], frame)
        return frame

    def peek(self, frame: Peaks) -> Peaks:
        """The peak of ``frame``'s scope so far, per device, without ending it (exact).

        That is the most of ``frame``, of every scope opened above it, and of the counter
        now: a scope above folds into the one below only when it ends.
        """
        with self._lock:
            above = next((i for i, f in enumerate(self._frames) if f is frame), None)
            if above is None:
                return dict(frame)
            out: Peaks = {}
            for f in self._frames[above:]:
                _fold(out, f)
            _fold(out, self._read())
        return out

    @property
    def depth(self) -> int:
        """Number of scopes currently open on this counter."""
        return len(self._frames)

    def _after_fork(self) -> None:
        # A forked child (a rank notebook_launcher forks from a %%gpu_scope cell) has none of
        # the parent's scopes open, and maybe a lock the parent's sampler held (issue 28).
        self._lock = threading.Lock()
        self._frames = []


class OuterPeak:
    """A counter other processes read too: only the outermost scope resets it and gets a peak.

    A reset of the cgroup's peak is seen by every reader (v1) or lowers theirs (v2), so a
    nested scope must not reset it again; nested scopes get no exact peak (an empty frame)
    and fall back to sampling, while the outermost one gets the counter's peak.

    Args:
        name: the device the peak is for.
        read: the counter's peak since the last reset, or None.
        reset: resets the counter; returns False where that is refused.
    """

    def __init__(
        self, name: str, read: Callable[[], int | None], reset: Callable[[], bool]
    ) -> None:
        self._name = name
        self._read = read
        self._reset = reset
        self._lock = threading.Lock()
        self._frames: list[Peaks] = []
        self._exact = False

    def push(self) -> Peaks:
        """Start a scope; the outermost one resets the counter."""
        frame: Peaks = {}
        with self._lock:
            if not self._frames:
                self._exact = self._reset()
            self._frames.append(frame)
        return frame

    def pop(self, frame: Peaks) -> Peaks:
        """End the scope of ``frame``: the counter's peak for the outermost one, else none."""
        with self._lock:
            outermost = bool(self._frames) and self._frames[0] is frame
            self._frames = [f for f in self._frames if f is not frame]
            value = self._read() if outermost and self._exact else None
        if value is not None:
            frame[self._name] = value
        return frame

    @property
    def depth(self) -> int:
        """Number of scopes currently open on this counter."""
        return len(self._frames)

    def _after_fork(self) -> None:
        # The child's first scope is its outermost: it resets the counter and gets its peak.
        self._lock = threading.Lock()
        self._frames = []
        self._exact = False


def _host_read() -> Peaks:
    value = host.hwm_bytes()
    return {} if value is None else {"host": value}


host_peaks = PeakStack(_host_read, host.reset_hwm)
"""The host's exact peak RSS (``VmHWM`` reset through ``/proc/self/clear_refs``)."""

torch_peaks = PeakStack(torch_cuda.peaks, torch_cuda.reset_peaks)
"""The torch allocator's exact peak per device; a no-op until CUDA is initialised."""

container_peaks = OuterPeak(cgroup.NAME, cgroup.read_peak, cgroup.reset_peak)
"""The container's peak (v1 ``max_usage_in_bytes``, v2 ``memory.peak`` on kernels >= 6.12)."""

if hasattr(os, "register_at_fork"):  # not on Windows
    for _counter in (host_peaks, torch_peaks, container_peaks):
        os.register_at_fork(after_in_child=_counter._after_fork)
