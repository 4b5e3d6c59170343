"""``%resmagic top``: the ranked cells as a text table, and as HTML rows that jump to the cell.

In JupyterLab and Notebook 7 each row is an ``rm-jump`` row whose link names the cell by the
id its frontend sent when it ran (``#cell-id=…``), else by its number in this kernel session
(``#execution-count=…``): the labextension's ``resmagic:jump`` plugin scrolls the notebook
to it on a click. A row of an earlier session without an id names no cell (its number is
another kernel's). ``text/plain`` is always there: a terminal, a saved notebook, nbconvert.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from resmagic.units import format_bytes, format_seconds, format_table

__all__ = ["TopTable"]

_WHAT = {
    "peak": "peak above start",
    "held": "held after",
    "time": "time",
}
_BAR = 12  # characters of the text bar at the top row's value


class TopTable:
    """Ranked cells (``resmagic.store.ranking.plain_rows``), shown as text or as jumping rows.

    Args:
        rows: the ranked rows, highest first.
        by: what ranked them.
        scope: what the title says they cover (``"work/train.ipynb, every session"``).
        session: this kernel's session id: its rows can be named by number.
    """

    def __init__(
        self, rows: Sequence[Mapping[str, Any]], by: str, scope: str, session: str | None
    ) -> None:
        self.rows = list(rows)
        self.by = by
        self.scope = scope
        self.session = session

    @property
    def title(self) -> str:
        """``cells that used the most, by peak above start: train.ipynb, every session``."""
        return f"cells that used the most, by {_WHAT[self.by]}: {self.scope}"

    def _figure(self, row: Mapping[str, Any]) -> str:
        if self.by == "time":
            return format_seconds(row["value"])
        if row["device"] is None:  # a died cell killed before its first sample
            return "not sampled"
        return f"+{format_bytes(int(row['value']))} {row['device']}"

    def _cell(self, row: Mapping[str, Any]) -> str:
        number = "In [?]" if row["cell"] is None else f"In [{row['cell']}]"
        return number if row["session"] == self.session else f"{number}, earlier kernel"

    def _status(self, row: Mapping[str, Any]) -> str:
        if row["status"] == "died":
            return "died (the kernel died in it)"
        return str(row["status"])

    def _bar(self, row: Mapping[str, Any]) -> float:
        top = max((float(r["value"]) for r in self.rows), default=0.0)
        return float(row["value"]) / top if top > 0 else 0.0

    def _text_rows(self) -> list[tuple[str, ...]]:
        return [
            (
                str(row["rank"]),
                self._cell(row),
                str(row["label"] or ""),
                self._figure(row),
                "█" * max(1, round(self._bar(row) * _BAR)) if row["value"] > 0 else "",
                str(row["runs"]),
                self._status(row),
            )
            for row in self.rows
        ]

    def __repr__(self) -> str:
        if not self.rows:
            return f"{self.title}\n  none yet: no cell in the run store rose, held or ran here"
        header = ("#", "cell", "label", _WHAT[self.by], "", "runs", "status")
        return f"{self.title}\n{format_table([header, *self._text_rows()])}"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def _link(self, row: Mapping[str, Any]) -> str | None:
        if row["cell_id"]:
            return f"#cell-id={row['cell_id']}"
        if row["cell"] is not None and row["session"] == self.session:
            return f"#execution-count={row['cell']}"
        return None  # another kernel's number names no cell of this notebook

    def _repr_html_(self) -> str:
        head = "".join(
            f"<th>{html.escape(c)}</th>"
            for c in ("#", "cell", "label", _WHAT[self.by], "", "runs", "status")
        )
        body = "".join(
            self._html_row(row, text)
            for row, text in zip(self.rows, self._text_rows(), strict=True)
        )
        caption = f"<caption>{html.escape(self.title)}</caption>"
        empty = "" if self.rows else "<tr><td colspan='7'>none yet</td></tr>"
        return f"<table class='rm-top'>{caption}<tr>{head}</tr>{body}{empty}</table>"

    def _html_row(self, row: Mapping[str, Any], text: tuple[str, ...]) -> str:
        rank, cell, label, figure, _, runs, status = (html.escape(v) for v in text)
        link = self._link(row)
        if link is not None:
            cell = f"<a href='{html.escape(link)}' title='go to this cell'>{cell}</a>"
        width = f"{max(self._bar(row) * 100, 1):.0f}%"
        bar = (
            "<div style='width:8em'><div class='rm-top-bar' style='width:"
            f"{width};height:0.7em;background:var(--jp-brand-color1,#1976d2)'></div></div>"
        )
        if row["status"] == "died":
            status = f"<b>{status}</b>"
        kind = " class='rm-jump'" if link is not None else ""
        cells = (rank, cell, label, figure, bar, runs, status)
        return f"<tr{kind}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
