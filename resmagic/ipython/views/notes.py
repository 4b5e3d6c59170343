"""How one shell shows a report beside its cell: its text, and the lines that go with it.

The lines a report's own summary does not have: ``held by:`` (what holds the memory a block
left), `` · last time 12.3 s`` (the run store's last run of the same cell), and the "no GPU
row" reason, said once per process. :class:`Notes` also makes a ``gpu_scope``'s live panel,
which shows the same lines under its summary. Magic cells (:mod:`resmagic.ipython.cells.options`)
and watch mode (:mod:`resmagic.ipython.watch`) both show their reports through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from resmagic.ipython.views.output import ReportOutput
from resmagic.ipython.views.text import render_report, report_kinds
from resmagic.units import format_delta

if TYPE_CHECKING:
    from resmagic.ipython.views.cell_panel import CellPanel
    from resmagic.report import GpuReport, Report
    from resmagic.scopes.gpu import gpu_scope

__all__ = ["LastRunOf", "LastTime", "Notes"]


class LastTime(Protocol):
    """What the run store says about a report's cell last time (`` · last time 1.2 s``)."""

    def __call__(self, report: Report, *, peak_from: str | None = None) -> str:
        """The suffix for ``report``'s line; ``peak_from``: another scope's peak instead."""
        ...


LastRunOf = Callable[[str], Any]
"""The run store's last run of a scope in the running cell (a ``LastRun``), or None."""

_said: set[str] = set()  # "no GPU row" reasons already shown in this process


class Notes:
    """Shows one shell's reports: text with its lines, the live panel, lines said once.

    Args:
        shell: the IPython shell (whether a kernel can show a live panel).
        output: where text reports and the panel's summary go.
        last_time: the run store's `` · last time ...`` suffix for a report, if any.
        last_run: the run store's last run of a scope in the running cell, if known.
    """

    def __init__(
        self,
        shell: Any,
        output: ReportOutput,
        last_time: LastTime | None = None,
        last_run: LastRunOf | None = None,
    ) -> None:
        self.shell = shell
        self.output = output
        self.last_time = last_time
        self.last_run = last_run

    def last_line(self, report: Report) -> list[str]:
        """``  last time 12.3 s, peak 5.1 GiB`` for a cell that ran before (the run store)."""
        suffix = self.last_time(report) if self.last_time is not None else ""
        return [f"  {suffix.removeprefix(' · ')}"] if suffix else []

    def holder_lines(self, report: Report) -> list[str]:
        """The line naming what holds the memory (``held by: ...``), where the report has it.

        The scope named them when it closed (``report.holders``): after a cell that left a
        lot held, or at an out-of-memory error, before the reclaim cleared its frames.
        """
        if not isinstance(report, report_kinds()[0]) or not report.holders_when:
            return []
        from resmagic.holders import Holders, held_device  # with the first holders' line

        holders = Holders(report.holders)
        if report.holders_when == "error":
            freed = ", freed by the reclaim" if report.reclaimed else ""
            text = holders.line(min_bytes=1 << 20).replace("held by:", "held when it ran out:")
            return [f"  {text}{freed}"]
        device = report.holders[0].device if report.holders else held_device(report.devices)
        name = device or "host"
        rest = _not_variables(report, name, getattr(self.shell, "user_ns", None))
        return [f"  {name} {holders.line(min_bytes=1 << 20)}{rest}"]

    def say_once(self, text: str) -> str | None:
        """``text`` the first time this process shows it, else None ("no GPU row" notes)."""
        if text in _said:
            return None
        _said.add(text)
        return text

    def panel(self, scope: gpu_scope, magic: str, delay: float | None = None) -> CellPanel | None:
        """A live ``CellPanel`` for ``scope``, or None where no kernel can show one."""
        from resmagic.ipython.views import cell_panel  # ipywidgets loads with the first panel

        if not cell_panel.available(self.shell):
            return None
        return cell_panel.CellPanel(scope, magic, _said, self.output, delay, self._expected)

    def load_panel(self) -> None:
        """Import the live panel's widgets now, where a kernel can show a panel (0.2-1 s)."""
        from resmagic.ipython.views import cell_panel

        if cell_panel.available(self.shell):
            cell_panel.import_widgets()

    def _expected(self) -> float | None:
        last = self.last_run("gpu_scope") if self.last_run is not None else None
        return getattr(last, "duration_s", None)

    def show_text(self, report: Report) -> None:
        """Show ``report`` as text: its summary, the last time, what holds its memory."""
        text = render_report(report, _said)
        if self.last_time is not None:
            first, newline, rest = text.partition("\n")
            text = first + self.last_time(report) + newline + rest
        text = "\n".join([text, *self.holder_lines(report)])
        self.output.show({"text/plain": text}, report.cell)

    def show_lost(self, report: Report) -> None:
        """A quiet layer's report still says what its log lost (reliability 2026-12-06 #5)."""
        from resmagic.report import LogReport

        if isinstance(report, LogReport) and report.notes:
            text = "\n".join(f"{report.scope}: {note}" for note in report.notes)
            self.output.show({"text/plain": text}, report.cell)


def _not_variables(report: GpuReport, device: str, namespace: Any) -> str:
    """`` · +60.0 MiB of +64.0 MiB not held by your variables (...)`` when they hold under half.

    UX audit 2026-12-06 P2-3: what a cell left in use that no variable holds is the
    allocator's and the interpreter's, not a leak to chase; the panel's Δ is then not orange.
    """
    row = next((d for d in report.devices if d.name == device and d.source != "NVML"), None)
    if row is None or row.delta_bytes <= 0:
        return ""
    # Loaded with the first cell that left memory in use, not at %load_ext (issue 26).
    from resmagic.ipython.views.held import NOT_VARIABLES, cell_holds, held_by_variables

    holds = cell_holds(namespace)
    named = holds.get(device, 0) if holds is not None else None
    if named is None or held_by_variables(row.delta_bytes, named):
        return ""
    rest = format_delta(row.delta_bytes - named)
    return f" · {rest} of {format_delta(row.delta_bytes)} {NOT_VARIABLES}"
