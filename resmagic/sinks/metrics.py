"""A report as flat metric names and numbers, and its cell's status as tags, for trackers.

Names read ``scope[.label][.device[.nvml]].field``: ``gpu_scope.cuda:0.peak_bytes``,
``gpu_scope.host.peak_bytes``, ``gpu_scope.cuda:0.nvml.peak_bytes`` (NVML's device-wide
reading of the same GPU), ``timed.train.wall_s``, ``experiment_log.records``. Every number a
report has becomes a metric (new report fields too); flags and texts do not. Names keep
to MLflow's characters (letters, digits, ``_ - . : space``); anything else in a label becomes
``_``.
"""

from __future__ import annotations

import re
from typing import Any

from resmagic.report import Report
from resmagic.sinks.rankmetrics import rank_metrics

__all__ = ["clean_name", "metrics_of", "prefix_of", "status_tags"]

MAX_NAME = 250  # MLflow's longest metric or tag key
# Numbers that say when or where, not how much (flags and texts are left out by type).
_NOT_METRICS = frozenset({"started_at", "cell"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :]")


def clean_name(text: str) -> str:
    """``text`` with every character MLflow refuses in a name replaced by ``_``."""
    return _UNSAFE.sub("_", text)


def prefix_of(report: Report) -> str:
    """``"timed.train"``, ``"gpu_scope"``: the scope, then the label when it has one."""
    label = getattr(report, "label", None)
    return f"{report.scope}.{clean_name(label)}" if label else report.scope


def metrics_of(report: Report) -> dict[str, float]:
    """Every number in ``report`` by its metric name (see the module); devices per row."""
    prefix = prefix_of(report)
    record = report.to_dict()
    devices = record.pop("devices", None) or ()
    found = _numbers(prefix, record)
    found.update(rank_metrics(prefix, record.get("ranks")))  # issue 28: rank 0's table
    if "wall_s" in record:
        found.pop(f"{prefix}.duration_s", None)  # a timing's wall time says it already
    for row in devices:
        name = clean_name(str(row["name"]))
        part = f"{name}.nvml" if row["source"] == "NVML" else name
        found.update(_numbers(f"{prefix}.{part}", row))
    return {name[:MAX_NAME]: value for name, value in found.items()}


def _numbers(prefix: str, record: dict[str, Any]) -> dict[str, float]:
    return {
        f"{prefix}.{key}": float(value)
        for key, value in record.items()
        if key not in _NOT_METRICS
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    }


def status_tags(report: Report, step: int) -> dict[str, str]:
    """``{"cell.12.status": "error", "cell.12.error": "ZeroDivisionError: ..."}``; ok: none.

    ``step`` is the report's cell; outside IPython (no cell) it counts reports instead, and
    the tags read ``report.3.status``.
    """
    if report.status == "ok":
        return {}
    where = f"cell.{step}" if report.cell is not None else f"report.{step}"
    tags: dict[str, str] = {f"{where}.status": report.status}
    if report.error:
        tags[f"{where}.error"] = report.error
    return tags
