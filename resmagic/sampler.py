"""The one background thread that samples probes for live views and sampled peaks.

Started when the first :class:`Watch` is added, stopped (and joined) when the last one is
removed, so a process never has more than one sampler thread and has none while nothing
needs it. The thread only reads probes and calls the watches' callbacks; it never prints.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from resmagic.config import settings
from resmagic.probes.reading import DeviceMemory

__all__ = ["Sampler", "Watch", "sampler"]

Reader = Callable[[], Sequence[DeviceMemory]]
Listener = Callable[[float, Sequence[DeviceMemory]], None]


class Watch:
    """One view's interest: what to read, the running maximum per (device, source), a listener.

    Args:
        read: returns the readings to sample.
        on_sample: called from the sampler thread with ``(time.monotonic(), readings)``.
    """

    def __init__(self, read: Reader, on_sample: Listener | None = None) -> None:
        self.read = read
        self.on_sample = on_sample
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
        self._stop = threading.Event()

    def add(self, watch: Watch) -> Watch:
        """Start sampling ``watch`` (starting the thread if needed); returns it."""
        with self._lock:
            self._watches.append(watch)
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="resmagic-sampler", daemon=True
                )
                self._thread.start()
        return watch

    def remove(self, watch: Watch) -> None:
        """Stop sampling ``watch``; the thread stops and is joined when none is left."""
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)
            thread = self._thread if not self._watches else None
            if thread is not None:
                self._stop.set()
                self._thread = None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def shutdown(self) -> None:
        """Drop every watch and stop the thread (used by ``%unload_ext``)."""
        with self._lock:
            self._watches.clear()
        self.remove(Watch(tuple))

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
        while not stop.wait(settings.sample_interval):
            with self._lock:
                watches = list(self._watches)
            for watch in watches:
                try:
                    watch.sample()
                except Exception as exc:
                    # An exception escaping a thread prints into whatever cell runs now;
                    # keep it on the watch for its view to show, and sample the others.
                    if watch.error is None:
                        watch.error = f"{type(exc).__name__}: {exc}"


sampler = Sampler()
"""The process's one sampler."""
