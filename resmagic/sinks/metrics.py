"""A report as metrics in MiB and seconds, and the constants it carries as params.

Metric names read ``series[.device[.nvml]].field`` with the unit last:
``gpu_scope.host.peak_mib``, ``gpu_scope.cuda:0.peak_mib``, ``gpu_scope.cuda:0.nvml.peak_mib``
(NVML's device-wide reading of the same GPU), ``timed.train.wall_s``, ``timed.cell.wall_s``
(a timing with no label: a watched cell's), ``experiment_log.records``. Every byte field
becomes ``*_mib`` (bytes / 2**20, to the KiB), each device row adds ``peak_above_start_mib``
(peak - before: what the block needed) and ``held_mib`` (after - before: what it left),
and every other number stays as it is (new report fields too). A device's capacity and
source never change within a session: they are params (:func:`params_of`), not a chart of
a constant (UX audit 2026-12-06 P2-4). Names keep to MLflow's characters (letters, digits,
``_ - . : space``); anything else in a label becomes ``_``.
"""

from __future__ import annotations

import re
from typing import Any

from resmagic.cellfigures import CellFigures, MiB, device_key, mib, steps_text
from resmagic.redact import redact
from resmagic.report import Report
from resmagic.sinks.rankmetrics import rank_metrics

__all__ = ["cell_tags", "clean_name", "metrics_of", "params_of", "series_of"]

MAX_NAME = 250  # MLflow's longest metric, param or tag key
MAX_TAG = 8000  # its longest tag value
# Numbers that say when or where (a param, for the capacity), not how much; flags and
# texts are left out by type.
_NOT_METRICS = frozenset({"started_at", "cell", "total_bytes"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. :]")


def clean_name(text: str) -> str:
    """``text`` with every character MLflow refuses in a name replaced by ``_``."""
    return _UNSAFE.sub("_", text)


def series_of(report: Report) -> str:
    """The chart family a report belongs to: its steps count within it.

    ``"timed.train"`` for a label; a timing without one is ``"timed.cell"`` in a cell (a
    watched cell's, a bare ``%%timed``'s) and ``"timed.block"`` outside IPython, never a
    bare ``timed`` beside the labelled ones. Scopes that take no label are their scope:
    ``"gpu_scope"``, ``"experiment_log"``, ``"db_transaction"``.
    """
    if not hasattr(report, "label"):
        return report.scope
    label = getattr(report, "label", None)
    if label:
        return f"{report.scope}.{clean_name(label)}"
    return f"{report.scope}.{'cell' if report.cell is not None else 'block'}"


def metrics_of(report: Report) -> dict[str, float]:
    """Every number in ``report`` by its metric name (see the module); devices per row."""
    prefix = series_of(report)
    record = report.to_dict()
    devices = record.pop("devices", None) or ()
    found = _numbers(prefix, record)
    found.update(rank_metrics(prefix, record.get("ranks")))  # issue 28: rank 0's table
    if "wall_s" in record:
        found.pop(f"{prefix}.duration_s", None)  # a timing's wall time says it already
    for row in devices:
        part = f"{prefix}.{device_key(row)}"
        found.update(_numbers(part, row))
        found[f"{part}.peak_above_start_mib"] = mib(row["peak_bytes"] - row["before_bytes"])
        found[f"{part}.held_mib"] = mib(row["after_bytes"] - row["before_bytes"])
    return {name[:MAX_NAME]: value for name, value in found.items()}


def _numbers(prefix: str, record: dict[str, Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in record.items():
        if key in _NOT_METRICS or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if key.endswith("_bytes"):
            found[f"{prefix}.{key.removesuffix('_bytes')}_mib"] = mib(value)
        else:
            found[f"{prefix}.{key}"] = float(value)
    return found


def params_of(report: Report) -> dict[str, str]:
    """The constants in ``report``: each device's capacity in MiB and where it is read from.

    ``{"device.host.total_mib": "8192", "device.host.source": "RSS"}``; a device whose
    capacity is unknown (torch's allocator) has its source alone.
    """
    found: dict[str, str] = {}
    for row in getattr(report, "devices", ()):
        part = f"device.{device_key(row)}"
        if row.total_bytes is not None:
            found[f"{part}.total_mib"] = str(round(row.total_bytes / MiB))
        found[f"{part}.source"] = row.source
    return {name[:MAX_NAME]: value for name, value in found.items()}


def cell_tags(key: str, run: CellFigures) -> dict[str, str]:
    """What the run's tags say of one cell run: ``key`` is ``"cell.12"`` (its ``In [12]``).

    ``cell.12.status`` (``ok``, ``error``, ``interrupted``), ``cell.12.error`` (the first
    line, a URI's secrets as ``***``), ``cell.12.id`` (Jupyter's cell id), ``cell.12.label``
    and ``cell.12.steps`` (where its points are on the charts: ``"gpu_scope 4, timed.cell
    4"``; a loop in one cell ``"timed.step 0-99"``). Outside IPython only a report that failed
    is tagged, ``key`` counting the reports: ``report.3``.
    """
    if run.cell is None and run.status == "ok":
        return {}  # a script's loop of blocks would make thousands of tags
    tags: dict[str, str] = {f"{key}.status": run.status}
    if run.error:
        tags[f"{key}.error"] = redact(run.error)
    if run.cell_id:
        tags[f"{key}.id"] = run.cell_id
    if run.label:
        tags[f"{key}.label"] = run.label
    if run.steps:
        tags[f"{key}.steps"] = steps_text(run.steps)
    return {name[:MAX_NAME]: value[:MAX_TAG] for name, value in tags.items()}
