"""The one sink thread: reports go from the bus into a bounded queue, the thread sends them on.

The cell's only cost is :meth:`SinkThread.offer` (a lock and an append); everything a sink
does (importing its engine, talking to a server) happens on the ``resmagic-sinks`` daemon
thread. That thread waits ``LINGER_S`` after a report before it sends it, with whatever
came meanwhile: the cell that published is still rendering then, and a thread building a
request would take the GIL from it (cells run back to back share one request). A full
queue drops the new report and counts it. A sink that raises is counted and said once, on
stderr, by the next report's publisher or by :meth:`SinkThread.flush`, so a notebook shows
it under a cell instead of wherever a thread's output lands. Closing a sink (``sink=off``,
``%unload_ext``, interpreter exit) sends what is queued first, waiting at most a timeout:
a tracker that never answers delays the exit by that long, never more. A close that stops
waiting lets its sink go at once (a new one can start); the sink's own close still runs on
the thread when its tracker answers, so its run ends.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from resmagic import bus
from resmagic.ranktable import carried_elsewhere
from resmagic.redact import redact
from resmagic.report import Report, describe_error
from resmagic.sinks import sigterm
from resmagic.sinks.base import PartlySentError, Sink, SinkState, Slot

__all__ = ["CAPACITY", "EXIT_TIMEOUT_S", "Sink", "SinkState", "SinkThread", "sink_thread"]

CAPACITY = 1000  # reports waiting at most; a cell publishes one to four
EXIT_TIMEOUT_S = 10.0  # the most ``sink=off``, unload and exit wait for a slow tracker
LINGER_S = 0.1  # the thread waits this long after a report before it sends (see _work)
TERM_GRACE_S = 2.0  # after a SIGTERM during the exit's close, the most it still waits
_SLICE_S = 0.1  # a flush looks at the clock this often (a SIGTERM may have cut it short)


@dataclass(frozen=True, slots=True)
class _Close:
    slot: Slot


class SinkThread:
    """Feeds every report published on the bus to its sinks from one daemon thread.

    Args:
        capacity: the most reports waiting; one more is dropped and counted.
    """

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._reset()
        self._unsubscribe: Callable[[], None] | None = None  # kept by a forked child too
        self._exit_hooked = False

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._items: deque[Report | _Close] = deque()
        self._slots: list[Slot] = []
        self._inflight = 0  # reports being sent (-1: a sink being closed)
        self._sending_to: tuple[Slot, ...] = ()  # the sinks the reports in flight go to
        self._idle = False  # the thread waits for a first report (else it lingers or sends)
        self._hurry = 0  # callers waiting in flush: stop lingering
        self._thread: threading.Thread | None = None
        self._started: threading.Thread | None = None  # the last thread started, to join
        self.dropped = 0
        self._unsaid: list[str] = []
        self._said_full = False
        self._cut_at = float("inf")  # a SIGTERM at exit: flushes end by then

    def add(self, sink: Sink) -> None:
        """Send every report published from now on to ``sink`` (starting the thread if needed)."""
        with self._cond:
            self._slots.append(Slot(sink))
            if self._thread is None:
                self._thread = self._started = threading.Thread(
                    target=self._work, name="resmagic-sinks", daemon=True
                )
                self._thread.start()
            if self._unsubscribe is None:
                self._unsubscribe = bus.subscribe(self.offer)
            if not self._exit_hooked:
                atexit.register(self._close_at_exit)
                self._exit_hooked = True

    def names(self) -> list[str]:
        """The names of the sinks reports go to now."""
        with self._cond:
            return [slot.sink.name for slot in self._slots]

    def offer(self, report: Report) -> None:
        """Queue ``report`` for every sink, or drop and count it when the queue is full.

        The bus calls this on the publishing thread (the cell's): it never blocks on a sink.
        A ranks scope's report on a rank other than 0 is not sent: rank 0's carries it.
        """
        if carried_elsewhere(report):
            return
        with self._cond:
            if not self._slots:
                return
            if len(self._items) >= self.capacity:
                self.dropped += 1
                if not self._said_full:
                    self._said_full = True
                    self._unsaid.append(
                        f"the sink queue is full ({self.capacity} reports): reports are "
                        "dropped until it drains; %resmagic status counts them"
                    )
            else:
                self._items.append(report)
                if self._idle:  # a lingering thread is not woken for each report
                    self._cond.notify_all()
        self._say()

    def flush(self, timeout: float = EXIT_TIMEOUT_S) -> bool:
        """Wait until every queued report was handled, at most ``timeout`` s; True if it was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._hurry += 1
            self._cond.notify_all()
            try:
                while self._items or self._inflight:
                    left = min(deadline, self._cut_at) - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(min(left, _SLICE_S))
                done = not self._items and not self._inflight
            finally:
                self._hurry -= 1
        self._say()
        return done

    def remove(self, name: str, timeout: float = EXIT_TIMEOUT_S) -> bool:
        """Send what is queued, then close the sink ``name``; True if that took < ``timeout``.

        Past the timeout (or on Ctrl-C) the sink is let go: no report goes to it any more,
        what was queued for it alone is dropped and said, and its close (ending its run)
        still runs on the thread once the report it is sending is done.
        """
        slots: list[Slot] = []
        try:  # a Ctrl-C once a close is queued lets the sink go: it is never closed twice
            with self._cond:
                slots = [slot for slot in self._slots if slot.sink.name == name]
                for slot in slots:
                    self._items.append(_Close(slot))
                self._cond.notify_all()
            done = self.flush(timeout)
        except BaseException:
            if slots:
                self._let_go(name, slots, "interrupted")
            raise
        if not done:
            cut = self._cut_at < float("inf")
            self._let_go(name, slots, "the process is ending" if cut else f"{timeout:g} s")
        self._stop_if_idle()
        return done

    def close(self, timeout: float = EXIT_TIMEOUT_S) -> bool:
        """Close every sink (sending what is queued first) and stop the thread.

        A sink let go earlier that is still sending or closing is waited for too: all of it
        within ``timeout`` s.
        """
        deadline = time.monotonic() + timeout
        done = True
        for name in dict.fromkeys(self.names()):
            done = self.remove(name, max(deadline - time.monotonic(), 0)) and done
        done = self.flush(max(deadline - time.monotonic(), 0)) and done
        self._stop_if_idle()
        return done

    def _let_go(self, name: str, slots: list[Slot], why: str) -> None:
        """Stop feeding ``slots``; drop the reports queued that no sink is left to take."""
        with self._cond:
            for slot in slots:
                if slot in self._slots:
                    self._slots.remove(slot)
            unsent = 0
            if not self._slots:
                kept: deque[Report | _Close] = deque(
                    item for item in self._items if isinstance(item, _Close)
                )
                unsent, self._items = len(self._items) - len(kept), kept
        reports = f"{unsent} queued report{'s' * (unsent != 1)}"
        self._tell(
            f"{name}: stopped waiting for its tracker ({why}); {name} is off, {reports} not "
            "sent; what it is sending and the end of its run go on in the background while "
            "this process runs"
        )

    def _close_at_exit(self) -> None:
        """Close every sink as the interpreter exits; a SIGTERM meanwhile waits for the close.

        Jupyter's SIGTERM comes 2.5 s into a shutdown (:mod:`resmagic.sinks.sigterm`): it
        cuts the wait to ``TERM_GRACE_S`` and is delivered once the close is done.
        """

        def cut() -> None:
            self._cut_at = min(self._cut_at, time.monotonic() + TERM_GRACE_S)

        with sigterm.held(cut):
            self.close(EXIT_TIMEOUT_S)

    def states(self) -> list[SinkState]:
        """Each sink's counts now."""
        with self._cond:
            queued = sum(isinstance(item, Report) for item in self._items)
            sending = max(self._inflight, 0)
            to = self._sending_to
            slots = list(self._slots)
            dropped = self.dropped
        return [
            SinkState(
                s.sink.name,
                _where(s.sink),
                queued + (sending if s in to else 0),
                s.sent,
                dropped,
                s.failures,
                s.last_error,
            )
            for s in slots
        ]

    def _stop_if_idle(self) -> None:
        """Stop the thread and stop listening once no sink is left and nothing is pending.

        Called by the thread itself after a let-go sink's close, which never waits for it;
        by anyone else, it also waits until the thread has returned.
        """
        with self._cond:
            if self._slots or self._items or self._inflight:
                return  # a sink still listed, or a let-go one still sending or closing
            self._thread = None
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            self._cond.notify_all()
            thread = self._started
        if unsubscribe is not None:
            unsubscribe()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                self._idle = True
                self._cond.wait_for(lambda: self._items or self._thread is not me)
                self._idle = False
                if self._thread is not me:
                    return  # stopped only once every sink is closed: nothing is left
                # Linger: the cell that published is still rendering, and the GIL is better
                # left to it; reports that come meanwhile join this batch.
                self._cond.wait_for(lambda: self._hurry > 0 or self._thread is not me, LINGER_S)
                item = self._take()
            try:
                if isinstance(item, _Close):
                    self._close(item.slot)
                else:
                    for slot in self._sending_to:
                        self._send(slot, item)
            finally:
                with self._cond:
                    self._inflight = 0
                    self._sending_to = ()
                    self._cond.notify_all()
            if isinstance(item, _Close):
                self._stop_if_idle()  # the last sink closed: nobody may come to stop us

    def _take(self) -> list[Report] | _Close:
        """The reports up to the next close (or that close alone), now in flight."""
        first = self._items.popleft()
        if isinstance(first, _Close):
            self._inflight = -1  # busy, but no report
            return first
        batch = [first]
        while self._items and isinstance(self._items[0], Report):
            batch.append(self._items.popleft())  # type: ignore[arg-type]
        self._inflight = len(batch)
        self._sending_to = tuple(self._slots)
        return batch

    def _send(self, slot: Slot, reports: list[Report]) -> None:
        try:
            slot.sink.send(reports)
        except PartlySentError as exc:
            self._failed(slot, exc.cause, exc.failed)
            with self._cond:
                slot.sent += len(reports) - exc.failed
        except Exception as exc:
            self._failed(slot, exc, len(reports))
        else:
            with self._cond:
                slot.sent += len(reports)

    def _close(self, slot: Slot) -> None:
        try:
            slot.sink.close()
        except Exception as exc:
            self._failed(slot, exc, 0)
        with self._cond:
            if slot in self._slots:
                self._slots.remove(slot)

    def _failed(self, slot: Slot, exc: Exception, reports: int) -> None:
        text = describe_error(exc)
        with self._cond:
            slot.failures += reports
            slot.last_error = text
            if not slot.said:
                slot.said = True
                self._unsaid.append(
                    f"the {slot.sink.name} sink failed: {text}; the cells go on, and "
                    "%resmagic status counts what it could not send (said once)"
                )

    def _tell(self, message: str) -> None:
        with self._cond:
            self._unsaid.append(message)
        self._say()

    def _say(self) -> None:
        # Said by the caller's thread (a cell's), never by the sink thread: in a notebook
        # a thread's output lands under whichever cell is newest.
        if not self._unsaid:
            return
        with self._cond:
            lines, self._unsaid = self._unsaid, []
        for line in lines:  # a tracker's error may quote its URI, password and all
            print(f"resmagic: {redact(line)}", file=sys.stderr)

    def _after_fork(self) -> None:
        # A forked child (a DataLoader worker) has no sink thread and must not write into
        # its parent's runs, nor wait at its exit for a thread it does not have: it starts
        # with no sinks. The bus it copied still holds our subscription: it is kept.
        self._reset()


def _where(sink: Sink) -> str:
    try:
        return sink.describe()
    except Exception as exc:
        return f"unknown: {describe_error(exc)}"


sink_thread = SinkThread()
"""The process's one sink thread (``resmagic.settings.update(sink=...)`` adds and removes sinks)."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=sink_thread._after_fork)
