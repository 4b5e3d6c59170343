"""Rank 0's rank table in a tracker: a series per rank and device, and which rank peaked."""

from __future__ import annotations

from resmagic.sinks.metrics import metrics_of
from resmagic.sinks.rankmetrics import rank_metrics
from tests.reports import ranks_report


def test_rank_zeros_report_has_a_peak_per_rank_and_the_rank_that_peaked() -> None:
    metrics = metrics_of(ranks_report(0))
    assert metrics["gpu_scope.rank0.host.peak_mib"] == 300
    assert metrics["gpu_scope.rank1.host.peak_mib"] == 500
    assert metrics["gpu_scope.rank1.host.peak_above_start_mib"] == 400
    assert metrics["gpu_scope.rank1.wall_s"] == 2.0
    assert metrics["gpu_scope.ranks.host.peak_rank"] == 1
    assert metrics["gpu_scope.ranks.slowest_rank"] == 1
    assert metrics["gpu_scope.ranks.missing"] == 1
    assert not any(name.startswith("gpu_scope.rank2.") for name in metrics)  # nothing measured
    assert metrics["gpu_scope.host.peak_mib"] == 300  # the rank's own rows stay


def test_another_ranks_own_table_makes_no_rank_metrics() -> None:
    assert rank_metrics("gpu_scope", ranks_report(1).to_dict()["ranks"]) == {}
    assert rank_metrics("gpu_scope", None) == {}


def test_an_nvml_row_is_its_own_series_beside_the_allocators() -> None:
    table = {
        "rank": 0,
        "rows": [
            {
                "rank": 0,
                "status": "ok",
                "wall_s": 1.0,
                "devices": [
                    {"name": "cuda:0", "source": "NVML", "before_bytes": 0, "peak_bytes": 1 << 20},
                    {
                        "name": "cuda:0",
                        "source": "torch allocator",
                        "before_bytes": 0,
                        "peak_bytes": 2 << 20,
                    },
                ],
            }
        ],
    }
    metrics = rank_metrics("timed.step", table)
    assert metrics["timed.step.rank0.cuda:0.nvml.peak_mib"] == 1
    assert metrics["timed.step.rank0.cuda:0.peak_mib"] == 2
    assert "timed.step.ranks.slowest_rank" not in metrics  # one rank: nobody is slowest
