"""The store's one writer thread: jobs from a bounded queue, committed in batches, retried.

Cells put jobs (a function of the connection) on the queue and go on: no SQLite call is on
a cell's path. The thread commits what has queued up (gathered for up to 0.05 s, so it wakes
at most 20 times a second, not once a cell) in one ``BEGIN IMMEDIATE`` transaction;
when another process holds the lock past ``busy_timeout`` it waits and tries again, so two
kernels writing one store lose no rows and never show "database is locked". A job that
fails for another reason is dropped alone, counted, and described once in :attr:`problem`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from resmagic.store.schema import connect

__all__ = ["Job", "Pending", "Writer"]

T = TypeVar("T")
Job = Callable[..., Any]
"""A function of the connection (and the arguments it was queued with)."""
_Item = tuple[Job, tuple[Any, ...], "Pending[Any] | None"]

_STOP = object()
_BATCH = 1024
# What a SIGKILL can lose is what is still queued: the rows of cells that ended within this
# window. Over 40 kills of back-to-back cells 0.2 s lost 99 of 995 rows, 0.05 s 16 of 1,053
# and 23 of 1,057 in two runs (reliability 2026-12-06 #4). Back-to-back tiny cells pay for
# the smaller commits on this thread: 51 -> 71 µs of its CPU per %%timed -q cell, 139 -> 182
# µs per watched cell (2 busy cores); a cell longer than the window commits alone either way.
_GATHER_S = 0.05
_ATTEMPTS = 30  # with busy_timeout 10 s each: minutes of another writer's lock, not forever


class Pending(Generic[T]):
    """A job's result, set by the writer thread."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: T | None = None
        self.error: BaseException | None = None

    def set(self, value: T | None, error: BaseException | None = None) -> None:
        """Called once, by the writer thread: the job's value, or what it failed with."""
        self._value, self.error = value, error
        self._done.set()

    @property
    def done(self) -> bool:
        """True once the writer thread has run the job (or dropped it)."""
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> T | None:
        """The value, or None when it failed or is not there within ``timeout`` seconds."""
        if not self._done.wait(timeout):
            return None
        return self._value


class Writer:
    """One thread writing one store file.

    Jobs go on a deque (an append, no lock: nothing on a cell's path waits for this
    thread); the thread is woken by the first job after it went idle, lets jobs gather
    for ``_GATHER_S`` and commits them together.

    Args:
        path: the SQLite file (created with its folder).
        tick: called on the thread with the connection about once a ``tick_s`` while
            ``ticking()`` says so (a running cell's live peak), in a transaction of its own.
        first: called with the connection first in every batch's transaction (the
            running rows of cells started since: no job per cell for them).
        many: ``{job: job_many}``: a run of queued ``job`` calls (no result asked) in one
            batch is done as one ``job_many(conn, [args, ...])`` (one ``executemany``).
        maxsize: the queue's bound; a job that finds it full is dropped and counted.
    """

    def __init__(
        self,
        path: str,
        *,
        tick: Job | None = None,
        ticking: Callable[[], bool] = lambda: False,
        tick_s: float = 1.0,
        first: Job | None = None,
        many: dict[Job, Job] | None = None,
        maxsize: int = 10_000,
    ) -> None:
        self.path = path
        self.lost = 0
        self.problem: str | None = None
        self._noted = False
        self._tick, self._ticking, self._tick_s = tick, ticking, tick_s
        self._first = first
        self._many = many or {}
        self._jobs: deque[Any] = deque()
        self._maxsize = maxsize
        self._wake = threading.Event()  # set by the first job after the thread went idle
        self._hurry = threading.Event()  # a caller waits for a result: no gathering
        self._conn: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="resmagic-store", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the thread takes jobs."""
        return self._thread.is_alive()

    def submit(self, job: Job, *args: Any, result: bool = False) -> Pending[Any] | None:
        """Queue ``job(conn, *args)``; never blocks (a full queue drops it: :attr:`lost`).

        ``result``: return a :class:`Pending` that will hold the job's value.
        """
        pending: Pending[Any] | None = Pending() if result else None
        if len(self._jobs) >= self._maxsize:
            self.lost += 1
            self._note("the run store is behind; reports are being dropped")
            if pending is not None:
                pending.set(None, RuntimeError("the run store's queue is full"))
            return pending
        self._jobs.append((job, args, pending))
        self.poke()
        return pending

    def poke(self) -> None:
        """Wake the thread if it sleeps: it gathers for ``_GATHER_S``, then commits."""
        if not self._wake.is_set():
            self._wake.set()

    def hurry(self) -> None:
        """Commit what is queued now, without waiting to gather more (a caller waits)."""
        self._hurry.set()
        self._wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every job queued so far is committed (or failed); False on timeout."""
        if not self.alive:
            return True
        done = threading.Event()
        self._jobs.append(done)
        self.hurry()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued, stop the thread, close the file."""
        if self.alive:
            self._jobs.append(_STOP)
            self.hurry()
            self._thread.join(timeout)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        last_tick = time.monotonic()
        while True:
            ticking = self._tick is not None and self._ticking()
            if self._wake.wait(self._tick_s if ticking else None) and not self._hurry.is_set():
                # Let a few cells' jobs gather: one commit for them all, and this thread
                # wakes at most 20 times a second instead of contending with every cell (the
                # wake flag stays set meanwhile, so their submits skip setting it).
                self._hurry.wait(_GATHER_S)
            self._wake.clear()
            self._hurry.clear()
            batch = [self._jobs.popleft() for _ in range(len(self._jobs))]
            jobs: list[_Item] = [item for item in batch if isinstance(item, tuple)]
            if self._first is not None:
                jobs.insert(0, (self._first, (), None))
            for start in range(0, len(jobs), _BATCH):
                self._commit(jobs[start : start + _BATCH])
            tick = self._tick
            if tick is not None and ticking and time.monotonic() - last_tick >= self._tick_s * 0.9:
                last_tick = time.monotonic()
                self._commit([(tick, (), None)])
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()
            if any(item is _STOP for item in batch):
                break
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _commit(self, jobs: list[_Item]) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    values = self._run_jobs(conn, jobs)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if _busy(exc) and attempt + 1 < _ATTEMPTS:
                    time.sleep(min(0.05 * 2**attempt, 2.0))
                    continue
                self._failed(jobs, exc)
            except Exception as exc:
                self._failed(jobs, exc)
            else:
                for (_, _, pending), value in zip(jobs, values, strict=True):
                    if pending is not None:
                        pending.set(value)
            return

    def _run_jobs(self, conn: sqlite3.Connection, jobs: list[_Item]) -> list[Any]:
        """Each job's value, in order; a run of one job with a ``many`` form goes in one call.

        Issue 26 C1: back-to-back cells queue a report each; one ``executemany`` for the
        batch's reports. A failure fails the batch, which :meth:`_failed` retries job by job.
        """
        many = self._many
        if not many:
            return [job(conn, *args) for job, args, _ in jobs]
        values: list[Any] = []
        i, n = 0, len(jobs)
        while i < n:
            job, args, pending = jobs[i]
            together = many.get(job) if pending is None else None
            j = i + 1
            if together is not None:
                while j < n and jobs[j][0] is job and jobs[j][2] is None:
                    j += 1
            if j - i > 1 and together is not None:
                together(conn, [item[1] for item in jobs[i:j]])
                values.extend([None] * (j - i))
            else:
                values.append(job(conn, *args))
            i = j
        return values

    def _failed(self, jobs: list[_Item], exc: Exception) -> None:
        if len(jobs) > 1 and not (isinstance(exc, sqlite3.OperationalError) and _busy(exc)):
            for job in jobs:  # one bad job must not take the batch with it
                self._commit([job])
            return
        self.lost += len(jobs)
        self._note(f"could not write the run store {self.path}: {exc}")
        for _, _, pending in jobs:
            if pending is not None:
                pending.set(None, exc)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path)
        return self._conn

    def _note(self, text: str) -> None:
        if not self._noted:  # said once per writer, however often it happens
            self._noted = True
            self.problem = text


def _busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text
