"""The plain-Python composition root: plugs the run store and the sinks into the bus and settings.

The lower layers hold slots and registries and know nobody who fills them (the bus its store
slot, the settings their converters and on-set hooks); this module, near the top, fills them.
:func:`wire` runs once, at ``import resmagic``, so a script gets the same wiring as
``%load_ext``. What it plugs in is imported late, on first use, as before: ``sqlite3`` with
the first stored report, the sinks with the first ``sink=`` (mlflow itself only on the sink
thread).

A sink is added here, in :data:`SINKS`, with one line: its name, the package it needs, and
the function that makes it (CONTRIBUTING.md, "Adding a sink").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from resmagic import bus, config

if TYPE_CHECKING:
    from resmagic.report import Report
    from resmagic.sinks.base import Sink, SinkFactory
    from resmagic.store.recorder import Recorder

__all__ = ["SINKS", "wire"]


def later(module: str, name: str) -> Callable[[str | None], Sink]:
    """A maker of ``module.name(notebook=...)`` that imports ``module`` only when it makes one."""

    def make(notebook: str | None) -> Sink:
        return cast("Sink", getattr(importlib.import_module(module), name)(notebook=notebook))

    return make


SINKS: dict[str, SinkFactory] = {
    "mlflow": ("mlflow", later("resmagic.sinks.mlflow", "MlflowSink")),
}
"""Each sink by the name ``sink=`` takes: (the package it needs, or None; what makes it)."""


_recorder: list[Recorder] = []  # the process's recorder, once imported


def _record(report: Report) -> None:
    # The import statement once, not per report (issue 26 C1: ~1 µs of every measured cell).
    if not _recorder:
        from resmagic.store.recorder import recorder  # sqlite3 loads with the first report

        _recorder.append(recorder)
    _recorder[0].record(report)  # not a ranks scope's on rank 1..N: rank 0's report has it


def _parse_sink(raw: object) -> object:
    from resmagic import sinks  # loads (without any tracker) only when asked for

    return sinks.parse(raw, SINKS)


def _use_sinks(value: object) -> object:
    from resmagic import sinks

    return sinks.use(str(value), SINKS)


def _store_path(raw: object) -> object:
    from resmagic.store.files import usable
    from resmagic.store.paths import resolve

    path = resolve(str(raw))
    if path:
        usable(path)  # not a link, a device, a folder, another program's database
    return path


def wire() -> None:
    """Plug the run store into the bus, and the sinks and the store's path into the settings."""
    bus.set_store(_record)
    config.register("sink", convert=_parse_sink, on_set=_use_sinks)
    config.register("store", convert=_store_path)
