"""The logging plumbing of ``experiment_log``: formats, the record stamp, the stdout tee."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, TextIO

from resmagic.errors import OptionError, PathError
from resmagic.scopes.filekind import file_kind, names_a_folder, nearest_existing
from resmagic.scopes.linefile import LineFile

__all__ = [
    "TEXT_FORMAT",
    "JsonLinesFormatter",
    "LineHandler",
    "RunContext",
    "Tee",
    "level_of",
    "resolve_log_path",
    "user_traceback",
]

TEXT_FORMAT = "%(asctime)s %(levelname)-8s %(name)s [%(run_id)s] %(message)s"

# LogRecord attributes every record has; anything else came from ``extra=`` and is data.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per record, on one line: time, level, logger, message, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a JSON line; ``extra=`` fields become top-level keys."""
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def resolve_log_path(path: str | os.PathLike[str]) -> str:
    """Expand ``~``, make ``path`` absolute against the working directory, and check it.

    The path must be a regular file (a symlink to one is fine) or one that can be created;
    ``os.devnull`` is also taken, to throw a log away on purpose. A device such as
    ``/dev/full``, a FIFO (opening it hangs until a reader comes) or a socket is refused
    here, before the block runs (reliability 2026-12-06 #9).

    Raises:
        PathError: the path is empty, a directory (or ends with ``/``), a device, FIFO or
            socket, under a file, or not writable.
    """
    text = os.fspath(path)
    if not text.strip():
        msg = "the log path is empty: give a file name, e.g. runs/experiment.log"
        raise PathError(msg)
    full = os.path.abspath(os.path.expanduser(text))
    kind = file_kind(full)
    if kind == "a directory" or names_a_folder(text):
        example = os.path.join(text, "run.log")
        what = "is a directory" if kind == "a directory" else "names a folder"
        msg = f"{text!r} {what}: give a file inside it, e.g. {example!r}"
        raise PathError(msg)
    if kind not in (None, "file") and full != os.devnull:
        msg = f"{text!r} is {kind}, not a file a log can be written to; give a file name"
        msg += ", e.g. runs/experiment.log"
        raise PathError(msg)
    parent = nearest_existing(os.path.dirname(full))
    if not os.path.isdir(parent):
        msg = f"cannot create {text!r}: {parent!r} is a file, not a directory"
        raise PathError(msg)
    target = full if os.path.exists(full) else parent
    if not os.access(target, os.W_OK):
        msg = f"cannot write {text!r}: {target!r} is not writable; choose another path"
        raise PathError(msg)
    return full


class RunContext(logging.Filter):
    """Stamps each record with the run id."""

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamp ``record``; never drops one."""
        record.run_id = self.run_id
        return True


class LineHandler(logging.Handler):
    """A file handler that writes each record as one whole line, and counts the lost ones.

    Reliability 2026-12-06 #5: logging's ``FileHandler`` buffers in Python, leaves a cut
    line on a full disk, prints a ``--- Logging error ---`` traceback per record it could
    not write and raises again from ``close()``. Here a record the file refuses is counted
    in :attr:`file` (``lost``, ``error``) and said once by whoever reads the count. A
    record that cannot be formatted (the caller's mistake) still goes to ``handleError``.

    Raises:
        OSError: the file cannot be opened.
    """

    def __init__(self, path: str, mode: str = "a") -> None:
        # The file first: logging keeps every Handler made (for its exit hook), and one whose
        # file failed to open made that hook fail at exit, before the handlers made earlier.
        file = LineFile(path, mode)
        super().__init__()
        self.file = file
        self.close_error: OSError | None = None
        """Why closing the file failed, if it did."""

    def emit(self, record: logging.LogRecord) -> None:
        """Append ``record`` as one line; a write the disk refuses is counted, not printed."""
        try:
            line = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        self.file.append(line)

    def notes(self, path: str) -> tuple[str, ...]:
        """What went wrong with the file, one note per kind, e.g. records a full disk refused.

        ``"run.log: 480 of 500 records not written: [Errno 28] No space left on device"``.
        """
        notes: list[str] = []
        file = self.file
        if file.lost:
            total = file.written + file.lost
            notes.append(f"{path}: {file.lost} of {total} records not written: {file.error}")
        if self.close_error is not None:
            notes.append(f"{path}: closing the log failed: {self.close_error}")
        return tuple(notes)

    def close(self) -> None:
        """Close the file; never raises (a failure is kept in :attr:`close_error`)."""
        # Under the handler's lock, as FileHandler does: a thread still writing a record must
        # not write it to whatever file reuses the descriptor's number.
        self.acquire()
        try:
            self.file.close()
        except OSError as exc:
            self.close_error = exc
        finally:
            self.release()
            super().close()


class Tee(io.TextIOBase):
    """A text stream that writes through to ``original`` and logs each complete line.

    A real ``io.TextIOBase``, as rich's ``FileProxy`` is: code that checks what
    ``sys.stdout`` is keeps working while it is teed.
    """

    def __init__(self, original: TextIO, log: Callable[[str], None]) -> None:
        super().__init__()
        self.original = original
        self._log = log
        self._pending = ""
        self._lock = threading.Lock()
        self._busy = threading.local()

    def write(self, text: str) -> int:
        """Write ``text`` through, then log every line it completes."""
        written = self.original.write(text)
        if getattr(self._busy, "on", False):
            return written  # a handler that prints to this stream: do not log it again
        self._busy.on = True
        try:
            with self._lock:
                lines = (self._pending + text).split("\n")
                self._pending = lines.pop()
            for line in lines:
                self._log(line)
        finally:
            self._busy.on = False
        return written

    def flush(self) -> None:
        """Flush the original stream."""
        self.original.flush()

    def finish(self) -> None:
        """Log a last line the block left unfinished."""
        if self._pending:
            self._log(self._pending)
            self._pending = ""

    def writable(self) -> bool:
        """Always: it is an output stream."""
        return True

    def isatty(self) -> bool:
        """What the original says."""
        return self.original.isatty()

    def fileno(self) -> int:
        """The original's file descriptor (raises as the original does where it has none)."""
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]  # TextIOBase says str | None
        """The original's encoding."""
        return self.original.encoding

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


def user_traceback(tb: TracebackType | None) -> TracebackType | None:
    """Skip the leading frames that are resmagic's own (the cell runner), as IPython does.

    Looks only at ``f_globals``: reading ``f_locals`` would keep the user's locals alive
    past a later ``gpu_scope`` reclaim (CPython #113939).
    """
    while tb is not None and tb.tb_next is not None:
        if not str(tb.tb_frame.f_globals.get("__name__", "")).startswith("resmagic."):
            break
        tb = tb.tb_next
    return tb


def level_of(level: str | int) -> int:
    """A logging level from a name (``"debug"``), a number or a numeric string.

    A number must be from 0 to 50 (``CRITICAL``) or one a library registered with
    ``logging.addLevelName``: a level above every level in use drops every record the
    block logs, silently (reliability 2026-12-06 #9: ``--level 99999999999999999999999``).

    Raises:
        OptionError: an unknown name, or a number no record can reach.
    """
    value: object = None
    if isinstance(level, int) and not isinstance(level, bool):
        value = level
    elif isinstance(level, str):
        text = level.strip().upper()
        # ASCII only ("²".isdigit() is True, int("²") raises); a long one is out of range.
        digits = text.isascii() and text.isdigit() and len(text) <= 9
        value = int(text) if digits else logging.getLevelName(text)
    if isinstance(value, int) and (0 <= value <= logging.CRITICAL or _registered(value)):
        return value
    names = "DEBUG, INFO, WARNING, ERROR, CRITICAL"
    msg = f"unknown log level {level!r}: use one of {names} or a number from 0 to 50"
    raise OptionError(msg)


def _registered(value: int) -> bool:
    """True when a name was given to level ``value`` (``logging.addLevelName``)."""
    return value > 0 and not str(logging.getLevelName(value)).startswith("Level ")
