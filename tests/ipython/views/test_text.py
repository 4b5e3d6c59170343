"""Plain-text reports: one line, and the notes a report carries on lines of their own."""

from __future__ import annotations

from resmagic.ipython.views.text import render_report
from resmagic.report import LogReport


def test_a_log_that_lost_records_says_how_many_and_why_under_its_line() -> None:
    note = "run.log: 480 of 500 records not written: [Errno 28] No space left on device"
    report = LogReport(
        status="ok",
        duration_s=0.376,
        started_at=0.0,
        path="run.log",
        run_id="r1",
        records=20,
        lost=480,
        notes=(note,),
    )
    assert render_report(report) == (
        f"experiment_log  run.log  20 records (480 lost)  run r1  376 ms\n  {note}"
    )
