"""The one background thread that samples probes for live views and sampled peaks.

Started when the first :class:`Watch` is added; stopped ``settings.sampler_linger`` seconds
(default 1) after the last one was removed, unless a new one came: cells run back to back
(Run All) share one thread instead of paying a thread start and join each (the largest cost
of a panel cell). A process never has more than one sampler thread and has none while
nothing has needed it for a second; :meth:`Sampler.shutdown` (``%unload_ext``) stops it at
once. The thread only reads probes and calls the watches' callbacks; it never prints.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence

from resmagic.config import settings
from resmagic.probes.reading import DeviceMemory

__all__ = ["Sampler", "Watch", "sampler"]

Reader = Callable[[], Sequence[DeviceMemory]]
Listener = Callable[[float, Sequence[DeviceMemory]], None]

# Each system call of a sample gives up the GIL, and a thread running pure Python hands it
# back only after the interpreter's switch interval (5 ms unless set): a guard's sample of a
# few reads took 12-42 ms under a busy loop, and a loop of 200 steps of Python per 5 MiB went
# from the guard's 50% of a 300 MiB limit to the OOM killer in 3 of 155 processes (default
# sample_interval). At 1 ms: 0 of 235 (docs/reliability.md).
_PROMPT_SWITCH_S = 0.001


class Watch:
    """One view's interest: what to read, the running maximum per (device, source), a listener.

    Args:
        read: returns the readings to sample.
        on_sample: called from the sampler thread with ``(time.monotonic(), readings)``.
        prompt: its samples must come on time, under a busy loop too (a memory guard): while
            such a watch is sampled, the interpreter's switch interval is lowered to 1 ms
            (one the user sets meanwhile is kept).
    """

    def __init__(
        self, read: Reader, on_sample: Listener | None = None, *, prompt: bool = False
    ) -> None:
        self.read = read
        self.on_sample = on_sample
        self.prompt = prompt
        self.peaks: dict[tuple[str, str], int] = {}
        self.samples = 0
        self.error: str | None = None

    def sample(
        self, *, notify: bool = True, readings: Sequence[DeviceMemory] | None = None
    ) -> None:
        """Take one reading now and fold it into the running maxima (and tell the listener).

        ``readings`` taken by the caller a moment ago stand in for a fresh reading.
        """
        if readings is None:
            readings = self.read()
        now = time.monotonic()
        peaks = self.peaks
        for r in readings:
            key = (r.name, r.source)
            if r.used_bytes > peaks.get(key, -1):
                peaks[key] = r.used_bytes
        self.samples += 1
        if notify and self.on_sample is not None:
            self.on_sample(now, readings)

    def peak(self, name: str, source: str) -> int | None:
        """The highest ``used_bytes`` sampled for that device and source, if any."""
        return self.peaks.get((name, source))


class Sampler:
    """Samples every active :class:`Watch` each ``settings.sample_interval`` seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: list[Watch] = []
        self._thread: threading.Thread | None = None
        self._leaving: threading.Thread | None = None
        self._stop = threading.Event()
        self._soon: float | None = None
        self._switch: tuple[float, float] | None = None  # (the interval before, the one set)

    def add(self, watch: Watch) -> Watch:
        """Start sampling ``watch`` (starting the thread if needed); returns it."""
        with self._lock:
            self._watches.append(watch)
            if watch.prompt:
                self._quicken()
            if self._thread is None:
                leaving, self._leaving = self._leaving, None
                if leaving is not None:
                    leaving.join()  # it has let go of the lock and is returning: never two
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="resmagic-sampler", daemon=True
                )
                try:
                    self._thread.start()
                except BaseException as exc:
                    # The caller gets no watch to remove: it goes. A thread that never started
                    # (an Exception: a container at its pids.max) goes too, so a later add
                    # starts one; one that did (Ctrl-C as it started) lingers, as usual.
                    self._watches.remove(watch)
                    if watch.prompt:
                        self._relax()
                    if isinstance(exc, Exception):
                        self._thread = None
                    raise
        return watch

    def remove(self, watch: Watch) -> None:
        """Stop sampling ``watch``; the thread stops once none is left (see the module)."""
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)
                if watch.prompt:
                    self._relax()
            idle = not self._watches and settings.sampler_linger <= 0
        if idle:
            self._halt()

    def shutdown(self) -> None:
        """Drop every watch and stop the thread now (used by ``%unload_ext``)."""
        with self._lock:
            self._watches.clear()
            self._relax()
        self._halt()

    def _quicken(self) -> None:
        """A prompt watch came (under the lock): the switch interval at most 1 ms."""
        if self._switch is None:
            before = sys.getswitchinterval()
            if before > _PROMPT_SWITCH_S:
                # Noted before it is set, and cleared after it is given back: a process
                # forked between the two still gives it back (_after_fork).
                self._switch = (before, _PROMPT_SWITCH_S)
                sys.setswitchinterval(_PROMPT_SWITCH_S)

    def _relax(self) -> None:
        """A prompt watch went (under the lock): the last one gives the interval back."""
        if self._switch is None or any(w.prompt for w in self._watches):
            return
        before, ours = self._switch
        if sys.getswitchinterval() == ours:  # the user's own change meanwhile is kept
            sys.setswitchinterval(before)
        self._switch = None

    def _halt(self) -> None:
        with self._lock:
            thread = self._thread if not self._watches else None
            if thread is not None:
                self._stop.set()
                self._thread = None
            leaving, self._leaving = self._leaving, None
        for t in (thread, leaving):
            if t is not None and t is not threading.current_thread():
                t.join()

    def _after_fork(self) -> None:
        # A forked child has no sampler thread, maybe a lock held by the parent's, and the
        # parent's views: start afresh (a DataLoader worker forked right after a cell).
        self._lock = threading.Lock()
        self._watches = []
        self._thread = self._leaving = None
        self._stop = threading.Event()
        self._relax()  # the parent's guard is not this process's: its interval back

    def soon(self, delay: float) -> None:
        """Take the next sample within ``delay`` seconds, not a whole interval on.

        Called by a watch from the sampler thread: a memory guard whose working set will
        reach its threshold before the next sample (a loop allocating 2 GB/s goes from 60%
        to 100% of a 300 MiB limit in 60 ms, less than one 0.1 s interval).
        """
        self._soon = delay if self._soon is None else min(self._soon, delay)

    @property
    def running(self) -> bool:
        """True while the sampler thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def watches(self) -> int:
        """Number of active watches."""
        return len(self._watches)

    def _run(self, stop: threading.Event) -> None:
        idle_since: float | None = None
        while not stop.wait(self._next_wait()):
            with self._lock:
                watches = list(self._watches)
                if watches:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= settings.sampler_linger:
                    # Nobody came back: stop. add() starts a new thread from here on.
                    self._thread, self._leaving = None, threading.current_thread()
                    return
            for watch in watches:
                try:
                    watch.sample()
                except Exception as exc:
                    # An exception escaping a thread prints into whatever cell runs now;
                    # keep it on the watch for its view to show, and sample the others.
                    if watch.error is None:
                        watch.error = f"{type(exc).__name__}: {exc}"

    def _next_wait(self) -> float:
        soon, self._soon = self._soon, None
        interval = settings.sample_interval
        return interval if soon is None else max(min(soon, interval), 0.001)


sampler = Sampler()
"""The process's one sampler."""

if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=sampler._after_fork)
