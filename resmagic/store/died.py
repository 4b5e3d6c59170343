"""Cells whose kernel died: rows still ``running`` whose process is gone become ``died``.

A new kernel looks at the running rows of its own notebook only. A row whose process is
alive (a second kernel on the same notebook), or ran on another host, is left alone.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from resmagic.store.liveness import Identity, alive
from resmagic.units import format_bytes, format_seconds

__all__ = ["Death", "mark_dead"]


@dataclass(frozen=True, slots=True)
class Death:
    """A cell the previous kernel died in, as its running row last said."""

    cell: int | None
    scope: str
    label: str | None
    seconds: float
    devices: tuple[dict[str, Any], ...]
    oom_kills: int | None

    def message(self, oom_kills_now: int | None = None) -> str:
        """``resmagic: the previous kernel died during cell 14 (train), ..., 12 s into it``.

        Args:
            oom_kills_now: the container's OOM-kill counter now; higher than when the cell
                started means the OOM killer fired.
        """
        what = f"cell {self.cell}" if self.cell is not None else "a cell"
        parts = [f"resmagic: the previous kernel died during {what} ({self.label or self.scope})"]
        memory = self._memory()
        if memory:
            parts.append(memory)
        text = ", ".join([*parts, f"{format_seconds(self.seconds)} into it"])
        before, now = self.oom_kills, oom_kills_now
        if before is not None and now is not None and now > before:
            text += "; the container's OOM killer fired"
        return text

    def _memory(self) -> str:
        full = [d for d in self.devices if d.get("total_bytes")]
        if not full:
            return ""
        row = max(full, key=lambda d: d["peak_bytes"] / d["total_bytes"])
        peak, total = format_bytes(row["peak_bytes"]), format_bytes(row["total_bytes"])
        if row["name"] != "host":
            return f"{row['name']} at {peak} of {total}"
        return f"{peak} of a {total} limit" if row.get("limited") else f"{peak} of {total} RAM"


_RUNNING = (
    "SELECT r.id, r.cell, r.scope, r.label, r.started_at, r.updated_at, r.devices,"
    " r.oom_kills, s.host, s.pid, s.boot, s.pid_start"
    " FROM reports r JOIN sessions s ON s.session = r.session"
    " WHERE r.status = 'running' AND r.notebook IS ? ORDER BY r.id"
)


def mark_dead(conn: sqlite3.Connection, notebook: str | None) -> list[Death]:
    """Mark this notebook's running rows of dead processes ``died``; what they said, in order."""
    deaths = []
    for row in conn.execute(_RUNNING, (notebook,)).fetchall():
        rid, cell, scope, label, started, updated, devices, ooms = row[:8]
        if alive(Identity(*row[8:])) is not False:
            continue
        seconds = max((updated or started) - started, 0.0)
        conn.execute(
            "UPDATE reports SET status = 'died', duration_s = ?, updated_at = ?, error = ?"
            " WHERE id = ?",
            (seconds, time.time(), "the kernel died while this cell ran", rid),
        )
        deaths.append(Death(cell, scope, label, seconds, tuple(json.loads(devices or "[]")), ooms))
    return deaths
