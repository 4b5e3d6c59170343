"""resmagic: exact, cheap GPU-memory, timing, logging and database scopes for cells and scripts.

In a notebook: ``%load_ext resmagic``, then ``%%gpu_scope``, ``%%timed``,
``%%experiment_log PATH`` or ``%%db_transaction PATH`` on the first line of a cell; every
report also goes to the run store (``resmagic.runs()``, ``%resmagic runs``). In a
script: ``with gpu_scope():``, ``@timed("train")``, ``with experiment_log("run.log") as log:``.
Importing this package imports neither IPython, ipywidgets, torch nor pynvml.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from resmagic._lazy import later
from resmagic.bus import clear_history, history, history_frame
from resmagic.config import settings
from resmagic.wiring import wire

if TYPE_CHECKING:
    from resmagic._version import __version__
    from resmagic.report import (
        DeviceReport,
        GpuReport,
        LogReport,
        Report,
        TimingReport,
        TransactionReport,
    )
    from resmagic.scopes import db_transaction, experiment_log, gpu_scope, timed
    from resmagic.store import runs, top
    from resmagic.totals import clear_timings, timings

__all__ = [
    "DeviceReport",
    "GpuReport",
    "LogReport",
    "Report",
    "TimingReport",
    "TransactionReport",
    "__version__",
    "clear_history",
    "clear_timings",
    "db_transaction",
    "experiment_log",
    "gpu_scope",
    "history",
    "history_frame",
    "load_ipython_extension",
    "runs",
    "settings",
    "timed",
    "timings",
    "top",
    "unload_ipython_extension",
    "who",
]

wire()  # the store into the bus, the sinks and the store's path into the settings

# Each loads with its first use (issue 26: `%load_ext` in ≤ 12 ms imports only what the
# extension needs at once; a script's `from resmagic import timed` is unchanged).
_LATER = {
    **dict.fromkeys(
        (
            "DeviceReport",
            "GpuReport",
            "LogReport",
            "Report",
            "TimingReport",
            "TransactionReport",
        ),
        "resmagic.report",
    ),
    **dict.fromkeys(("db_transaction", "experiment_log", "gpu_scope", "timed"), "resmagic.scopes"),
    "__version__": "resmagic._version",
    "runs": "resmagic.store",
    "top": "resmagic.store",
    "clear_timings": "resmagic.totals",
    "timings": "resmagic.totals",
}


__getattr__ = later(__name__, _LATER, globals())
"""The names of ``__all__`` not imported yet, imported when first asked for (PEP 562)."""


def who(*args: Any, **kwargs: Any) -> Any:
    """Name the tensors and arrays your variables hold, largest first (see ``resmagic.holders``).

    ``who()`` in a notebook walks the caller's namespace; ``who(top=5, device="cuda:0")``.
    """
    from resmagic.holders import who as walk

    if not args and "namespace" not in kwargs:
        kwargs["namespace"] = sys._getframe(1).f_globals
    return walk(*args, **kwargs)


def load_ipython_extension(ipython: Any) -> None:
    """Register resmagic's magics in ``ipython`` (called by ``%load_ext resmagic``)."""
    from resmagic.ipython.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Undo exactly what loading did (called by ``%unload_ext resmagic``)."""
    from resmagic.ipython.extension import unload

    unload(ipython)
