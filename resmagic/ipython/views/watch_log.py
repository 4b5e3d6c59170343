"""``watch --log``: one whole JSON line per watched cell; a file that refuses lines is said once.

Reliability 2026-12-06 #6: on a full disk every watched cell lost its report line to an
``OSError`` from the log write. Now a cell always shows its line; the first record the file
refuses is said under that cell, the next ones are only counted (``%resmagic status``), and
when the file takes lines again the cell that wrote the first one says how many were lost.
"""

from __future__ import annotations

import json
from typing import Any

from resmagic.scopes.linefile import LineFile

__all__ = ["WatchLog"]


class WatchLog:
    """The JSON-lines file of one ``%resmagic watch on --log PATH``.

    The file is opened for each record and closed after it, as before: nothing is held
    open between cells, and a file moved away is made again.

    Args:
        path: the file, absolute.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.written = 0
        """Records written, each a whole line."""
        self.lost = 0
        """Records the file refused since watch mode started."""
        self.error: str | None = None
        """Why the last refused record was refused."""
        self._failing = 0  # records refused since the file last took one

    def append(self, record: dict[str, Any]) -> str | None:
        """Append ``record`` as one line; a note to show under the cell, or None. Never raises.

        The note comes when the file first refuses a record, and when it takes one again.
        """
        error: BaseException | None
        try:
            line = (json.dumps(record) + "\n").encode("utf-8", "backslashreplace")
            file = LineFile(self.path)
            try:
                file.append(line)
            finally:
                file.close()
            error = file.error
        except (OSError, TypeError, ValueError) as exc:  # cannot open; not JSON-ready
            error = exc
        if error is None:
            return self._took()
        return self._refused(error)

    def _took(self) -> str | None:
        self.written += 1
        lost, self._failing = self._failing, 0
        if not lost:
            return None
        records = f"{lost} record{'s' * (lost != 1)}"
        return f"watch --log: writing again; {records} not written: {self.error}"

    def _refused(self, error: BaseException) -> str | None:
        self.lost += 1
        self._failing += 1
        self.error = str(error) or type(error).__name__
        if self._failing > 1:
            return None
        return (
            f"watch --log: a record could not be written to {self.path}: {self.error};"
            " the next ones are counted, not said (%resmagic status)"
        )

    def describe(self) -> str:
        """``log PATH`` and, if records were lost, how many and why."""
        lost = f", {self.lost} records not written: {self.error}" if self.lost else ""
        return f"log {self.path}{lost}"
