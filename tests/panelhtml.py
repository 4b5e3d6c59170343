"""Read the panel's markup back: its state and each row's ``data-*`` byte counts."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class _Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.state: str | None = None
        self.rows: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = values.get("class", "").split()
        if "rm-panel" in classes:
            self.state = values.get("data-state")
        if "rm-row" in classes:
            self.rows.append({k[5:]: v for k, v in values.items() if k.startswith("data-")})


def parse_panel(markup: str) -> dict[str, Any]:
    """``{"state": "running"|"ok"|..., "rows": {(device, source): {"before": int, ...}}}``."""
    parser = _Rows()
    parser.feed(markup)
    rows = {}
    for row in parser.rows:
        numbers = {k: int(v) for k, v in row.items() if v.lstrip("-").isdigit()}
        rows[(row["device"], row["source"])] = {**row, **numbers}
    return {"state": parser.state, "rows": rows}
