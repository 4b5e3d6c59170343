"""``%resmagic guard on``: every cell runs under the memory guard, from the next one on."""

from __future__ import annotations

from typing import Any

from resmagic.guard import Guard
from resmagic.ipython.which_cell import running_cell
from resmagic.probes import cgroup
from resmagic.units import format_bytes

__all__ = ["CellGuard"]


class CellGuard:
    """Starts a :class:`~resmagic.guard.Guard` on ``pre_run_cell``, stops it on ``post_run_cell``.

    The events are registered only while the guard is on.
    """

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.at: float | None = None
        self._running: list[Guard] = []  # a cell run inside a cell (%%capture) nests

    def on(self, at: float) -> str:
        """Guard every cell from the next one on; returns the line to print.

        Where there is no container limit, nothing is turned on and the line says so.
        """
        limit = cgroup.limit_bytes()
        if limit is None:
            where = "no memory cgroup" if cgroup.own() is None else "a cgroup without a limit"
            return f"resmagic guard: nothing to guard here ({where}); the guard stays off"
        if self.at is None:
            self.shell.events.register("pre_run_cell", self.pre_run_cell)
            self.shell.events.register("post_run_cell", self.post_run_cell)
            # The cell's guard stops first, before the other post_run_cell callbacks (the
            # cell's scopes closing, the reports they publish to a user's subscriber): a stop
            # still waiting must never land in that bookkeeping.
            after = self.shell.events.callbacks["post_run_cell"]
            after.insert(0, after.pop())
        self.at = at
        return (
            f"resmagic guard on: a cell whose container working set passes {at:.0%} of the"
            f" {format_bytes(limit)} limit stops with MemoryLimitError (sampled every"
            " sample_interval; one huge allocation can still outrun it)"
        )

    def off(self) -> None:
        """Guard no new cell, and stop the guard of a cell running now."""
        if self.at is not None:
            self.shell.events.unregister("pre_run_cell", self.pre_run_cell)
            self.shell.events.unregister("post_run_cell", self.post_run_cell)
        self.at = None
        while self._running:
            self._running.pop().stop()

    def state(self) -> str:
        """``"guard: on at 90% of 300 MiB"`` or ``"guard: off"``."""
        if self.at is None:
            return "guard: off"
        limit = cgroup.limit_bytes()
        of = f" of {format_bytes(limit)}" if limit is not None else ""
        return f"guard: on at {self.at:.0%}{of}"

    def pre_run_cell(self, info: Any) -> None:
        """Start the cell's guard (in the thread that runs the cell)."""
        if self.at is None:
            return
        cell = running_cell(self.shell)
        self._running.append(Guard(self.at, cell="the cell" if cell is None else f"cell {cell}"))
        self._running[-1].start()

    def post_run_cell(self, result: Any) -> None:
        """Stop the guard of the cell that ended."""
        if self._running:
            self._running.pop().stop()
