"""The process's recorder: reports and running cells into the store ``settings.store`` names.

:func:`resmagic.bus.publish` hands every report here while ``settings.store`` is set (in
IPython the profile's store from ``%load_ext`` on; in a script only when asked). Nothing
here touches SQLite on the caller's thread: every write is a job for the writer thread.
The IPython layer tells the recorder which cell is running (:attr:`Recorder.context`) and
when a measured cell starts and ends; while one runs, its live peak is written about once a
second (:mod:`resmagic.store.running` takes the figures), so a kernel that dies leaves a row
saying where and at how much.
"""

from __future__ import annotations

import atexit
import functools
import os
import sqlite3
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

from resmagic._version import __version__
from resmagic.config import settings
from resmagic.probes import cgroup
from resmagic.ranktable import carried_elsewhere
from resmagic.report import Report
from resmagic.store import rows
from resmagic.store.capping import Cap
from resmagic.store.liveness import me
from resmagic.store.query import LastRun, last_runs
from resmagic.store.rows import CellRun, Session
from resmagic.store.running import Reader, host_reading, sample
from resmagic.store.schema import connect
from resmagic.store.statefile import StateFile
from resmagic.store.telling import tell
from resmagic.store.trimming import Tally
from resmagic.store.writer import Pending, Writer

__all__ = ["Recorder", "recorder"]

T = TypeVar("T")
_TRIM_EVERY = 50  # reports between two trims (and one before every read)


class Recorder:
    """Writes to the store ``settings.store`` names; follows the setting as it changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writer: Writer | None = None
        self._session: Session | None = None
        self._running: dict[str, tuple[CellRun, Reader]] = {}
        self._page: StateFile | None = None  # which cells are open, on disk at once
        self._oom_kills: int | None = None  # the counter as last read (off the cell path)
        self.context: Callable[[], CellRun | None] = lambda: None
        """The cell a report belongs to (the IPython layer sets it)."""
        self.session_id: str | None = None
        """The kernel's session id, else a fresh one per process."""
        self.notebook: str | None = None
        """The notebook path (ipykernel's ``__session__``); in a script, the script's."""
        self.script = True
        """False once the IPython layer has set :attr:`notebook` (maybe to None)."""
        self.say: Callable[[str], None] | None = None
        """How a problem found outside a measured cell is said (the IPython layer sets it;
        None: a ``RuntimeWarning``)."""
        self.cap = Cap()
        """A cell's share of the store (``settings.store_per_cell``)."""
        self._exit_registered = False
        self._untrimmed = 0
        self._tally = Tally()  # the writer's count of finished rows (a fresh one per writer)

    # -- the writer for the current setting ------------------------------------------------

    def writer(self) -> Writer | None:
        """The writer of ``settings.store`` (opened, or reopened after a change); None: off."""
        path = settings.store
        current = self._writer
        if current is not None and current.path == path:
            return current
        with self._lock:
            if self._writer is not None and self._writer.path != path:
                self._writer.close()
                self._writer = None
                self._close_page()
            if path and self._writer is None:
                self._open(path)
            return self._writer

    def _open(self, path: str) -> None:
        writer = Writer(
            path,
            tick=self._tick,
            ticking=lambda: bool(self._running),
            first=self._write_started,
            many={rows.insert_report: rows.insert_reports},
        )
        self._session = Session(
            self.session_id or uuid.uuid4().hex, me(), self.rows_notebook(), __version__
        )
        self._tally = Tally()  # before the writer is seen: its trims never count another store
        self._writer = writer
        writer.submit(self._begin, self._session)
        if not self._exit_registered:
            # The thread is a daemon: commit what is queued, waiting at most a few seconds
            # for another process's lock (a kernel asked to shut down must go).
            atexit.register(self.close, 5.0)
            self._exit_registered = True

    def _begin(self, conn: sqlite3.Connection, session: Session) -> None:
        """The session's row, and its state file once the store has proved usable."""
        rows.insert_session(conn, session)
        writer = self._writer
        if self._page is None and writer is not None and session is self._session:
            self._oom_kills = cgroup.oom_kills()
            running = [run for run, _ in list(self._running.values())]
            self._page = StateFile.create(writer.path, session, running)

    def _close_page(self) -> None:
        page, self._page = self._page, None
        if page is not None:
            page.close()

    def rows_notebook(self) -> str | None:
        """The notebook this process's rows name: :attr:`notebook`, in a script the script."""
        return _script() if self.script else self.notebook

    @property
    def session(self) -> Session | None:
        """This process's session, once the store is open."""
        return self._session

    def lookup(self, job: Callable[[sqlite3.Connection], T]) -> Pending[T] | None:
        """Run ``job`` on the writer thread with its connection; its result, when done."""
        return self._submit(job)

    def _submit(self, job: Callable[[sqlite3.Connection], T]) -> Pending[T] | None:
        writer = self.writer()
        return writer.submit(job, result=True) if writer is not None else None

    # -- what the bus and the IPython layer call -------------------------------------------

    def record(self, report: Report) -> None:
        """Queue ``report`` for the store, with the cell it ran in.

        A ranks scope's report on rank 1..N is not stored: rank 0's report carries it.
        """
        if carried_elsewhere(report):
            return
        run = self.context()
        writer = self._writer
        if writer is None or writer.path != settings.store:  # writer()'s test, inline
            writer = self.writer()
        if writer is not None and self._session is not None:
            if not self.cap.keeps(report, run, self.say):  # past its cell's share: not stored
                return
            session = self._session
            writer.submit(rows.insert_report, report, run, session)
            self._untrimmed += 1
            if self._untrimmed >= _TRIM_EVERY:
                self._trim(writer)
            if writer.problem is not None and (run is None or run.each_report):
                # No measured cell will end to say it (the IPython layer says it there): a
                # script, or a plain cell's loop that filled the queue. Said once.
                text = self.problem  # taken (cleared) first: two threads never both say it
                if text is not None:
                    tell(text, self.say)

    def _trim(self, writer: Writer, *, exact: bool = False) -> None:
        self._untrimmed = 0
        limit = settings.store_limit
        keep = self._session.session if self._session is not None else None
        writer.submit(functools.partial(self._tally.trim, exact=exact), limit, keep)

    def started(self, run: CellRun, read: Reader = host_reading) -> None:
        """A measured cell started: its running row is written with the writer's next batch.

        No job per cell: the writer writes the rows of the cells running then (a cell that
        has ended by then needs none), and samples them while they run.
        """
        writer = self._writer
        if writer is None or writer.path != settings.store:  # writer()'s test, inline
            writer = self.writer()
        if writer is None or self._session is None:
            return
        self._running[run.run] = (run, read)
        page = self._page
        if page is not None:  # the next kernel knows of it now, not after the writer's batch
            page.started(run, self._oom_kills)
        writer.poke()

    def ended(self, run: CellRun) -> None:
        """The cell ended (its reports are queued already): its running row goes."""
        writer = self._writer
        if self._running.pop(run.run, None) is None:
            return
        page = self._page
        if page is not None:  # ended, on disk before the cell's reply is sent
            page.ended(run)
        if writer is not None and run.written:
            writer.submit(rows.end_running, run)

    def _write_started(self, conn: sqlite3.Connection) -> None:
        session = self._session
        for run, read in list(self._running.values()):
            if run.written or session is None:
                continue
            run.oom_kills = self._oom_kills = cgroup.oom_kills()
            sample(run, read)
            rows.insert_running(conn, run, session.session)
            run.written = True
            # Set before looking: the cell's end either sees it written (and queues the
            # delete) or has already left _running (and the row goes here).
            if run.run not in self._running:
                rows.end_running(conn, run)

    def previous(self, run: CellRun, scopes: Sequence[str]) -> Pending[dict[str, LastRun]] | None:
        """Look up, on the writer thread, each scope's last run of this cell (or code)."""

        def look(conn: sqlite3.Connection) -> dict[str, LastRun]:
            return last_runs(
                conn,
                scopes,
                notebook=run.notebook,
                cell_id=run.cell_id,
                code_sha=run.code_sha,
                before_run=run.run,
            )

        return self._submit(look)

    def wait(self, pending: Pending[T], timeout: float = 1.0) -> T | None:
        """``pending``'s result, asking the writer not to wait for more jobs first."""
        if not pending.done:
            writer = self._writer
            if writer is not None:
                writer.hurry()
        return pending.result(timeout)

    def read(self, query: Callable[[sqlite3.Connection], T], path: str | None = None) -> T:
        """Run ``query`` on a connection of its own, after what this process queued is written."""
        path = path or settings.store
        writer = self._writer
        if writer is not None and writer.path == path:
            self._trim(writer, exact=True)
            writer.flush()
        conn = connect(path, create=False)  # a missing file reads as an empty store
        try:
            return query(conn)
        finally:
            conn.close()

    @property
    def lost(self) -> int:
        """Writes the current writer dropped (a full queue) or could not do: reports, trims."""
        writer = self._writer
        return writer.lost if writer is not None else 0

    @property
    def problem(self) -> str | None:
        """What went wrong writing, said once (then cleared)."""
        writer = self._writer
        if writer is None or writer.problem is None:
            return None
        text, writer.problem = writer.problem, None
        return text

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued write is committed."""
        writer = self._writer
        if writer is None:
            return True
        self._trim(writer)
        return writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what is queued and stop the writer (at exit, at ``%unload_ext``)."""
        with self._lock:
            writer, self._writer = self._writer, None
            running, self._running = list(self._running.values()), {}
        if writer is not None:
            for run, _ in running:  # still open at exit: not a kernel that died in it
                if run.written:
                    writer.submit(rows.end_running, run)
            writer.close(timeout)
        self._close_page()  # after the commit: killed before it, the page still says so

    def _tick(self, conn: sqlite3.Connection) -> None:
        for run, read in list(self._running.values()):
            if run.written:
                sample(run, read)
                rows.update_running(conn, run)

    def _after_fork(self) -> None:
        # A forked worker has no writer thread and is not the cell's kernel: start afresh.
        self._lock = threading.Lock()
        self._writer, self._session, self._running = None, None, {}
        self.session_id = None
        self.cap = Cap()
        page, self._page = self._page, None
        if page is not None:
            page.close(remove=False)  # the parent's page: this process only drops its copy


def _script() -> str | None:
    main = sys.argv[0] if sys.argv else ""
    return os.path.abspath(main) if main and os.path.isfile(main) else None


recorder = Recorder()
"""The process's one recorder."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=recorder._after_fork)
