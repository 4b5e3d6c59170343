"""A ranks scope's rank table as tracker metrics: one series per rank, and who peaked.

Rank 0's report of ``gpu_scope(ranks=True)`` or ``timed(ranks=True)`` (the only one the
sinks get: :func:`resmagic.ranktable.carried_elsewhere`) adds, under the report's prefix:

- ``gpu_scope.rank1.host.peak_mib``, ``gpu_scope.rank1.host.peak_above_start_mib``,
  ``gpu_scope.rank1.cuda:0.peak_mib``, ``gpu_scope.rank1.cuda:0.nvml.peak_mib``: each
  rank's device peaks in MiB (the naming of issue 27's MLflow work: ``*_mib``);
- ``timed.train.rank1.wall_s``: each rank's wall seconds;
- ``gpu_scope.ranks.host.peak_rank``: which rank peaked on each device (ties: the lowest);
  ``timed.train.ranks.slowest_rank``; ``gpu_scope.ranks.missing``: how many ranks sent
  nothing. The rank that peaked is a metric, not a run tag: a run spans many cells, and a
  metric keeps each cell's answer at its step where a tag would keep only the last.

A missing rank has no series of its own (nothing was measured).
"""

from __future__ import annotations

from typing import Any

from resmagic.ranktable import MISSING

__all__ = ["rank_metrics"]

_MiB = 1 << 20


def _mib(n: float) -> float:
    return round(n / _MiB, 3)


def _key(device: dict[str, Any]) -> str:
    name = str(device["name"])
    return f"{name}.nvml" if device.get("source") == "NVML" else name


def rank_metrics(prefix: str, table: dict[str, Any] | None) -> dict[str, float]:
    """Every rank's figures and who peaked (see the module); none on a rank other than 0.

    Args:
        prefix: the report's metric prefix, ``"gpu_scope"`` or ``"timed.train"``.
        table: the report's ``to_dict()["ranks"]``, or None (no ranks scope).
    """
    if not table or table.get("rank") != 0:
        return {}
    found: dict[str, float] = {}
    best: dict[str, tuple[int, int]] = {}
    slowest: tuple[float, int] | None = None
    rows = table.get("rows") or ()
    for row in rows:
        rank = int(row["rank"])
        if row["status"] == MISSING:
            continue
        part = f"{prefix}.rank{rank}"
        if row.get("wall_s") is not None:
            found[f"{part}.wall_s"] = float(row["wall_s"])
            if slowest is None or row["wall_s"] > slowest[0]:
                slowest = (float(row["wall_s"]), rank)
        for device in row.get("devices") or ():
            key = _key(device)
            peak = int(device["peak_bytes"])
            found[f"{part}.{key}.peak_mib"] = _mib(peak)
            found[f"{part}.{key}.peak_above_start_mib"] = _mib(peak - device["before_bytes"])
            if key not in best or peak > best[key][1]:
                best[key] = (rank, peak)
    for key, (rank, _) in best.items():
        found[f"{prefix}.ranks.{key}.peak_rank"] = float(rank)
    if slowest is not None and len(rows) > 1:
        found[f"{prefix}.ranks.slowest_rank"] = float(slowest[1])
    found[f"{prefix}.ranks.missing"] = float(sum(row["status"] == MISSING for row in rows))
    return found
