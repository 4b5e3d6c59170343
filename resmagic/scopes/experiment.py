"""``experiment_log``: a log file per experiment, attached for a block and always closed."""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from resmagic.errors import OptionError, PathError
from resmagic.report import LogReport, Report, describe_error, status_of
from resmagic.scopes.base import Scope, listening
from resmagic.scopes.logfile import (
    TEXT_FORMAT,
    JsonLinesFormatter,
    LineHandler,
    RunContext,
    Tee,
    level_of,
    resolve_log_path,
    user_traceback,
)
from resmagic.units import format_seconds

__all__ = ["JsonLinesFormatter", "experiment_log", "resolve_log_path"]

Format = Literal["text", "jsonl"]


@dataclass(slots=True)
class _Run:
    started_at: float
    t0: float
    run_id: str
    logger: logging.Logger
    handler: LineHandler | logging.NullHandler  # the null one once closed (see _close)
    context: RunContext
    saved: tuple[int, bool]
    record: Callable[[Report], None]
    tees: list[tuple[str, Tee]] = field(default_factory=list)
    ended: BaseException | None = None
    finished: bool = False


class experiment_log(Scope[logging.Logger, LogReport]):
    """Attach a file handler to a logger for a block; yield the logger; always detach and close.

    The log gets a start record (run id, pid, the program without its arguments, time),
    every record the block logs, a record of the report of each other scope opened inside
    it in the same thread or task (a stacked ``gpu_scope``, ``timed``; a thread's own log
    records that thread's scopes), the exception with its traceback if the block raised, and
    an end record with the status and duration. Each record is flushed as it is written, so
    a killed process keeps its log.
    The logger does not propagate to the root logger while attached (no duplicate console
    lines); its level and propagation are restored afterwards.

    Args:
        path: the log file; ``~`` is expanded, parent folders are created. A regular file
            or one to create (``os.devnull`` throws the log away), not a device or FIFO.
        name: the logger's name (``logging.getLogger(name)``).
        level: the lowest level written, a name (``"DEBUG"``) or a number from 0 to 50 (or
            one registered with ``logging.addLevelName``).
        fmt: ``"text"`` (one line per record) or ``"jsonl"`` (one JSON object per line).
        mode: ``"a"`` appends, ``"w"`` starts the file afresh.
        tee: also log every line the block prints to stdout and stderr.
        propagate: let records reach the root logger's handlers too.

    Raises:
        PathError: the path cannot be written.
        OptionError: an option has a bad value.

    Examples:
        >>> with experiment_log("runs/exp1.log") as log:  # doctest: +SKIP
        ...     log.info("lr=%g", 3e-4)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str = "experiment",
        level: str | int = "INFO",
        fmt: Format = "text",
        mode: Literal["a", "w"] = "a",
        tee: bool = False,
        propagate: bool = False,
    ) -> None:
        super().__init__()
        self.path = resolve_log_path(path)
        self.display_path = os.fspath(path)
        if not name or not isinstance(name, str):
            msg = f"name must be a non-empty logger name, not {name!r}"
            raise OptionError(msg)
        self.name = name
        self.level = level_of(level)
        if fmt not in ("text", "jsonl"):
            msg = f"fmt must be 'text' or 'jsonl', not {fmt!r}"
            raise OptionError(msg)
        if mode not in ("a", "w"):
            msg = f"mode must be 'a' (append) or 'w' (overwrite), not {mode!r}"
            raise OptionError(msg)
        self.fmt = fmt
        self.mode = mode
        self.tee = tee
        self.propagate = propagate

    def _open(self) -> tuple[_Run, logging.Logger]:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            handler = LineHandler(self.path, self.mode)  # whole lines (reliability #5)
        except OSError as exc:  # checked at construction, but the disk may disagree now
            msg = f"cannot open the log {self.path!r}: {exc.strerror or exc}"
            raise PathError(msg) from exc
        run: _Run | None = None
        try:
            run = self._new_run(handler)
            self._attach(run)
        except BaseException:  # not open yet, so nobody else would undo it (reliability #3)
            if run is None:
                handler.close()
            else:
                self._detach(run)
            raise
        return run, run.logger

    def _new_run(self, handler: LineHandler) -> _Run:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        context = RunContext(run_id)
        handler.addFilter(context)
        handler.setFormatter(
            JsonLinesFormatter() if self.fmt == "jsonl" else logging.Formatter(TEXT_FORMAT)
        )
        logger = logging.getLogger(self.name)
        saved = (logger.level, logger.propagate)
        run = _Run(
            time.time(), time.perf_counter(), run_id, logger, handler, context, saved, _ignore
        )
        run.record = lambda report: self._record(run, report)
        return run

    def _attach(self, run: _Run) -> None:
        """Put the run's handler, level, listener and tees in place; writes the start record."""
        run.logger.setLevel(self.level)
        run.logger.propagate = self.propagate
        run.logger.addHandler(run.handler)
        listening(run.record, True)
        self._emit(
            run,
            logging.INFO,
            f"experiment start: run {run.run_id}, pid {os.getpid()}",
            event="start",
            pid=os.getpid(),
            program=_program(),
        )
        if self.tee:
            for stream in ("stdout", "stderr"):
                tee = Tee(getattr(sys, stream), self._tee_logger(run, stream))
                run.tees.append((stream, tee))  # first: _untee restores only what it finds
                setattr(sys, stream, tee)

    def _detach(self, run: _Run) -> None:
        """Undo whatever part of :meth:`_attach` was done, and close the handler."""
        run.finished = True
        try:
            self._untee(run)
        finally:
            listening(run.record, False)
            run.logger.removeHandler(run.handler)
            run.logger.setLevel(run.saved[0])
            run.logger.propagate = run.saved[1]
            run.handler.close()
            run.handler = _CLOSED  # see _close

    def _close(self, run: _Run, exc: BaseException | None) -> LogReport:
        self._untee(run)
        if exc is not None:
            if status_of(exc) == "interrupted":
                self._emit(run, logging.WARNING, "experiment interrupted", event="interrupted")
            else:
                self._emit(
                    run,
                    logging.ERROR,
                    f"experiment failed: {describe_error(exc)}",
                    event="exception",
                    exc_info=(type(exc), exc, user_traceback(exc.__traceback__)),
                )
        run.ended = exc
        try:
            return self._end(run)
        finally:
            # Let the closed handler go here, where Ctrl-C is held back: logging's weakref
            # callback for it takes logging's lock in 3.11's `acquire(); try:` pattern, and
            # a Ctrl-C there (on whichever main-thread line drops the last reference, or
            # the cyclic collector's) leaves that lock held: the next thread that logs
            # hangs (reliability 2026-12-06 #3, seen once in ~25 random-SIGINT runs).
            run.handler = _CLOSED

    def _end(self, run: _Run) -> LogReport:
        duration = time.perf_counter() - run.t0
        status = status_of(run.ended)
        handler = run.handler
        if not isinstance(handler, LineHandler):
            msg = "this experiment_log run has closed already"
            raise RuntimeError(msg)
        try:
            self._emit(
                run,
                logging.INFO if status == "ok" else logging.WARNING,
                f"experiment end: {status} after {format_seconds(duration)}",
                event="end",
                status=status,
                duration_s=round(duration, 6),
            )
        finally:
            run.finished = True
            listening(run.record, False)
            level, propagate = run.saved
            run.logger.removeHandler(handler)
            run.logger.setLevel(level)
            run.logger.propagate = propagate
            handler.close()  # never raises: a failure becomes a note
        return LogReport(
            **self.common(run.started_at, duration, run.ended),
            path=self.display_path,
            file=self.path,
            logger=self.name,
            run_id=run.run_id,
            fmt=self.fmt,
            records=handler.file.written,
            lost=handler.file.lost,
            notes=handler.notes(self.display_path),
        )

    def _record(self, run: _Run, report: Report) -> None:
        if run.finished:
            return  # a scope opened inside the log that closed after it: too late to write
        self._emit(run, logging.INFO, report.summary(), event="report", report=report.to_dict())

    def _emit(self, run: _Run, level: int, message: str, **extra: Any) -> None:
        # Lifecycle records go straight to our handler: whatever the logger's level, and
        # never to the root logger.
        exc_info = extra.pop("exc_info", None)
        record = run.logger.makeRecord(
            run.logger.name, level, "(resmagic)", 0, message, (), exc_info, extra=extra
        )
        run.handler.handle(record)

    def _tee_logger(self, run: _Run, stream: str) -> Callable[[str], None]:
        level = logging.INFO if stream == "stdout" else logging.WARNING

        def log(line: str) -> None:
            self._emit(run, level, line, event=stream)

        return log

    def _untee(self, run: _Run) -> None:
        for stream, tee in reversed(run.tees):
            tee.finish()
            if getattr(sys, stream) is tee:
                setattr(sys, stream, tee.original)
        run.tees.clear()


def _program() -> str:
    """The running program (``sys.argv[0]``), without its arguments.

    Arguments can carry secrets (``--api-key ...``), and in a kernel they are ``-f`` and the
    path of the kernel's connection file (reliability 2026-12-06 #11); the program alone
    still says which script wrote the log.
    """
    return sys.argv[0] if sys.argv else ""


_CLOSED = logging.NullHandler()
"""Stands for a run's handler once closed (a late record from a stray tee goes nowhere)."""


def _ignore(report: Report) -> None:
    """A listener that records nothing (until the run's own is in place)."""
