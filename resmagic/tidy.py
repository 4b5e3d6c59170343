"""Reports as tidy rows: one row per report and device, the shape both DataFrames share.

``resmagic.history_frame()`` (the session's reports) and ``resmagic.runs()`` (the run store's)
give the same columns for the same report: the device's fields beside the report's, the
holders as one readable cell. Both build their rows and their frame here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from resmagic.ranktable import MISSING, rank_device_rows
from resmagic.units import format_bytes

if TYPE_CHECKING:
    import pandas

__all__ = ["as_frame", "holders_cell", "ranks_cell", "tidy_rows"]


def holders_cell(holders: Sequence[dict[str, Any]]) -> str:
    """A report's holders as one readable cell: ``"opt.state 768 MiB; Out[9] 120 MiB"``."""
    return "; ".join(f"{h['name']} {format_bytes(h['nbytes'])}" for h in holders)


def ranks_cell(table: dict[str, Any]) -> str:
    """A rank table (a report's ``ranks``, as a dict) as one cell: who peaked, who is missing.

    ``"ranks 2 of 2; host peak 250 MiB on rank 1"``; its rows are also device rows
    (:func:`resmagic.ranktable.rank_device_rows`).
    """
    rows = table.get("rows") or ()
    missing = [row["rank"] for row in rows if row["status"] == MISSING]
    parts = [f"ranks {len(rows) - len(missing)} of {table['size']}"]
    hosts = [
        (d["peak_bytes"], -row["rank"])
        for row in rows
        for d in row.get("devices") or ()
        if d["name"] == "host"
    ]
    if hosts:
        peak, rank = max(hosts)
        parts.append(f"host peak {format_bytes(peak)} on rank {-rank}")
    parts += [f"rank {rank} missing" for rank in missing]
    return "; ".join(parts)


def tidy_rows(
    record: dict[str, Any], devices: Sequence[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """``record`` once per device, each with the device's fields (``device`` for its name).

    A report without devices (``timed``, ``experiment_log``, ``db_transaction``) takes one
    row with no device columns. ``limited`` (a running row's flag) is not a column.
    """
    out = []
    ranks = record.get("ranks")
    if isinstance(ranks, dict):  # a report's own table (the store's are in its devices)
        devices = [*(devices or ()), *rank_device_rows(ranks)]
        record = {**record, "ranks": ranks_cell(ranks)}
    each: list[dict[str, Any] | None] = list(devices) if devices else [None]
    for device in each:
        row = dict(record)
        if device is not None:
            fields = dict(device)
            row["device"] = fields.pop("name")
            fields.pop("limited", None)
            row.update(fields)
        out.append(row)
    return out


def as_frame(
    pandas: Any,
    rows: Iterable[dict[str, Any]],
    columns: Sequence[str] | None = None,
    ints: Sequence[str] = ("cell",),
) -> pandas.DataFrame:
    """The rows as a DataFrame: ``started_at`` UTC timestamps, bytes and ``ints`` as ``Int64``.

    ``pandas`` is the module, imported by the caller (each says how to install it).
    """
    table = pandas.DataFrame(list(rows), columns=columns)
    if not len(table.columns):
        return table
    table["started_at"] = pandas.to_datetime(table["started_at"], unit="s", utc=True)
    for column in [c for c in table.columns if c.endswith("_bytes")] + list(ints):
        if column in table.columns:
            table[column] = table[column].astype("Int64")
    return table
