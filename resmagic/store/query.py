"""Reading the store back: every run as a DataFrame, the last N rows, a cell's last run."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resmagic.cellfigures import device_key
from resmagic.store.rows import code_sha
from resmagic.tidy import as_frame, holders_cell, ranks_cell, tidy_rows

if TYPE_CHECKING:
    import pandas

__all__ = ["LastRun", "Stored", "frame", "last_device", "last_run", "last_runs", "recent"]

_COLUMNS = (
    "r.id, r.run, r.session, s.host, s.pid, r.notebook, r.cell_id, r.cell, r.code_sha,"
    " r.scope, r.label, r.status, r.started_at, r.duration_s, r.devices, r.holders, r.notes,"
    " r.extra, r.error"
)
_FROM = " FROM reports r LEFT JOIN sessions s ON s.session = r.session"
_NAMES = [c.strip().split(".")[1] for c in _COLUMNS.split(",")]


@dataclass(frozen=True, slots=True)
class Stored:
    """One row of the store, as ``%resmagic runs`` shows it."""

    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def devices(self) -> list[dict[str, Any]]:
        """The device objects of the row (empty for ``timed`` and the like)."""
        return list(json.loads(self.values["devices"] or "[]"))


def recent(conn: sqlite3.Connection, count: int | None = None) -> list[Stored]:
    """The last ``count`` rows (every row when None), oldest first."""
    sql = f"SELECT {_COLUMNS}{_FROM} ORDER BY r.id DESC"
    rows = conn.execute(sql + (" LIMIT ?" if count else ""), (count,) if count else ())
    return [Stored(dict(zip(_NAMES, row, strict=True))) for row in reversed(rows.fetchall())]


def _where(
    notebook: str | None, cell: int | str | None, since: Any, code: str | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if notebook is not None:
        clauses.append("r.notebook = ?")
        args.append(notebook)
    if isinstance(cell, str):
        clauses.append("r.cell_id = ?")
        args.append(cell)
    elif cell is not None:
        clauses.append("r.cell = ?")
        args.append(int(cell))
    if since is not None:
        clauses.append("r.started_at >= ?")
        args.append(_epoch(since))
    if code is not None:
        clauses.append("r.code_sha = ?")
        args.append(code_sha(code))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def _epoch(since: Any) -> float:
    """Seconds since the epoch for a datetime, a timedelta back from now, a number or ISO text."""
    if isinstance(since, int | float):
        return float(since)
    if isinstance(since, dt.timedelta):
        return dt.datetime.now(dt.timezone.utc).timestamp() - since.total_seconds()
    if isinstance(since, str):
        since = dt.datetime.fromisoformat(since)
    if isinstance(since, dt.datetime):
        if since.tzinfo is None:
            since = since.astimezone()  # a naive time is the user's local time
        return float(since.timestamp())
    msg = f"since takes a datetime, a timedelta, seconds since the epoch or ISO text, not {since!r}"
    raise TypeError(msg)


def frame(
    conn: sqlite3.Connection,
    notebook: str | None = None,
    cell: int | str | None = None,
    since: Any = None,
    code: str | None = None,
) -> pandas.DataFrame:
    """Rows matching every filter given, as a tidy DataFrame (one row per report and device)."""
    try:
        import pandas
    except ImportError as exc:
        msg = "runs() needs pandas: pip install pandas (or use %resmagic runs)"
        raise ImportError(msg) from exc
    where, args = _where(notebook, cell, since, code)
    rows = conn.execute(f"SELECT {_COLUMNS}{_FROM}{where} ORDER BY r.id", args).fetchall()
    out = [row for values in rows for row in _tidy(dict(zip(_NAMES, values, strict=True)))]
    return as_frame(pandas, out, _frame_columns(out), ints=("cell", "pid"))


def _frame_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    first = [n for n in _NAMES if n not in ("devices", "extra")]
    first += ["device", "source", "before_bytes", "peak_bytes", "after_bytes", "total_bytes"]
    seen = dict.fromkeys(first)
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _tidy(values: dict[str, Any]) -> list[dict[str, Any]]:
    devices = json.loads(values.pop("devices") or "[]")
    values.update(json.loads(values.pop("extra") or "{}"))
    holders = values["holders"]
    values["holders"] = holders_cell(json.loads(holders)) if holders else None
    if isinstance(values.get("ranks"), dict):  # its rows are among the devices already
        values["ranks"] = ranks_cell(values["ranks"])
    return tidy_rows(values, devices)


@dataclass(frozen=True, slots=True)
class LastRun:
    """The previous run of a cell's scope: how long it took, its peak, how it ended."""

    duration_s: float
    peak_bytes: int | None
    device: str | None
    status: str
    started_at: float


def last_runs(
    conn: sqlite3.Connection,
    scopes: Sequence[str],
    *,
    notebook: str | None = None,
    cell_id: str | None = None,
    code_sha: str | None = None,
    label: str | None = None,
    before_run: str | None = None,
) -> dict[str, LastRun]:
    """Each scope's newest finished run in this cell, else of this code (scope → run).

    "This cell" is the same notebook and cell id; else any run of the same code hash.
    ``label``, if given, must match too; ``before_run`` leaves out the rows of the run
    asking (its own reports).
    """
    keys: list[tuple[str, list[Any]]] = []
    if cell_id is not None:
        keys.append(("r.notebook IS ? AND r.cell_id = ?", [notebook, cell_id]))
    if code_sha is not None:
        keys.append(("r.code_sha = ?", [code_sha]))
    labelled = " AND r.label IS ?" if label is not None else ""
    wanted = ",".join("?" * len(scopes))
    found: dict[str, LastRun] = {}
    for clause, args in keys:
        rows = conn.execute(
            "SELECT r.scope, r.duration_s, r.devices, r.status, r.started_at FROM reports r"
            f" WHERE {clause} AND r.scope IN ({wanted}){labelled} AND r.run IS NOT ?"
            " AND r.status != 'running' ORDER BY r.id DESC LIMIT ?",
            [*args, *scopes, *([label] if label is not None else []), before_run, 8 * len(scopes)],
        ).fetchall()
        for scope, *rest in rows:
            found.setdefault(scope, _last(*rest))
        if len(found) == len(scopes):
            break
    return found


def last_run(conn: sqlite3.Connection, *, scope: str, **where: Any) -> LastRun | None:
    """:func:`last_runs` for one scope: its newest finished run in this cell, else this code."""
    return last_runs(conn, [scope], **where).get(scope)


def last_device(rows: Sequence[Mapping[str, Any]]) -> tuple[int, str] | None:
    """The peak "last time" shows and its device: the largest GPU row's, else the host's.

    This process's own rows only: never ``workers`` or ``container`` (issue 27 item 2: a
    DataLoader's workers or the whole container outgrew the cell's host row, and "last
    time ... peak 569 MiB" named their memory as the cell's), nor a launched job's ``rank
    N`` rows (issue 28). The device is named as ``%resmagic top`` names it (``host``,
    ``cuda:0``, ``cuda:0.nvml``).
    """
    gpus = [d for d in rows if str(d.get("name")).startswith("cuda:")]
    own = gpus or [d for d in rows if d.get("name") == "host"]
    pick = max(own, key=lambda d: d.get("peak_bytes") or 0, default=None)
    if pick is None or pick.get("peak_bytes") is None:
        return None
    return int(pick["peak_bytes"]), device_key({"name": pick["name"], "source": pick.get("source")})


def _last(duration: float | None, devices: str | None, status: str, started: float) -> LastRun:
    found = last_device(json.loads(devices or "[]"))
    return LastRun(
        duration or 0.0,
        found[0] if found else None,
        found[1] if found else None,
        status,
        started,
    )
