"""Sinks: trackers that receive every report off the cell path (MLflow first).

``resmagic.settings.update(sink="mlflow")`` (``%resmagic config sink=mlflow`` in IPython,
``c.ResMagic.sinks = ["mlflow"]`` in its config) sends every report from then on to MLflow
from one background thread; ``sink="off"`` sends what is queued, ends the run and stops. A
tracker is an optional extra (``pip install 'resmagic[mlflow]'``) and is imported on that
thread only. A slow or unreachable tracker never slows or fails a cell: see
:mod:`resmagic.sinks.thread`.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping

from resmagic.errors import OptionError
from resmagic.sinks.base import SinkFactory
from resmagic.sinks.thread import EXIT_TIMEOUT_S, SinkState, sink_thread

__all__ = ["context", "flush", "parse", "states", "use"]

context: dict[str, str] = {}
"""What the IPython layer knows of the session for the sinks' tags: ``notebook``."""


def parse(value: object, known: Mapping[str, SinkFactory]) -> str:
    """``"off"`` or a comma list of ``known`` sink names, cleaned; else :class:`OptionError`."""
    text = str(value).strip().lower()
    if text in ("", "off", "none"):
        return "off"
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in known]
    if unknown:
        msg = f"unknown sink {unknown[0]!r}: known sinks are {', '.join(known)}, or off"
        msg += " (e.g. sink=mlflow)"
        raise OptionError(msg)
    return ",".join(names)


def use(value: str, known: Mapping[str, SinkFactory]) -> str:
    """Run exactly the sinks ``value`` names (``"off"``: none); returns what runs now.

    ``known`` makes each by name (:data:`resmagic.wiring.SINKS`). A sink whose package is
    not installed is said once, on stderr, and not started.
    """
    wanted = [] if value == "off" else value.split(",")
    for name in sink_thread.names():
        if name not in wanted:
            sink_thread.remove(name)
    running = sink_thread.names()
    for name in wanted:
        if name in running:
            continue
        package, make = known[name]
        if package is not None and importlib.util.find_spec(package) is None:  # imports nothing
            print(
                f"resmagic: sink={name} needs the {package} package: pip install "
                f"'resmagic[{package}]'; no reports are sent to {name}",
                file=sys.stderr,
            )
            continue
        sink_thread.add(make(context.get("notebook")))
    return ",".join(sink_thread.names()) or "off"


def states() -> list[SinkState]:
    """Each running sink's counts: sent, queued, dropped, failures."""
    return sink_thread.states()


def flush(timeout: float = EXIT_TIMEOUT_S) -> bool:
    """Wait until every report so far was handed to the sinks, at most ``timeout`` seconds."""
    return sink_thread.flush(timeout)
