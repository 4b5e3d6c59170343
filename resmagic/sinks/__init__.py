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

from resmagic.errors import OptionError
from resmagic.sinks.thread import EXIT_TIMEOUT_S, Sink, SinkState, runner

__all__ = ["NAMES", "context", "flush", "parse", "states", "use"]

NAMES = ("mlflow",)
"""The sinks there are, by the name ``sink=`` takes."""

context: dict[str, str] = {}
"""What the IPython layer knows of the session for the sinks' tags: ``notebook``."""


def parse(value: object) -> str:
    """``"off"`` or a comma list of known sink names, cleaned; :class:`OptionError` otherwise."""
    text = str(value).strip().lower()
    if text in ("", "off", "none"):
        return "off"
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        msg = f"unknown sink {unknown[0]!r}: known sinks are {', '.join(NAMES)}, or off"
        msg += " (e.g. sink=mlflow)"
        raise OptionError(msg)
    return ",".join(names)


def use(value: str) -> str:
    """Run exactly the sinks ``value`` names (``"off"``: none); returns what runs now.

    A sink whose package is not installed is said once, on stderr, and not started.
    """
    wanted = [] if value == "off" else value.split(",")
    for name in runner.names():
        if name not in wanted:
            runner.remove(name)
    running = runner.names()
    for name in wanted:
        if name in running:
            continue
        if importlib.util.find_spec(name) is None:  # looks on sys.path; imports nothing
            print(
                f"resmagic: sink={name} needs the {name} package: pip install "
                f"'resmagic[{name}]'; no reports are sent to {name}",
                file=sys.stderr,
            )
            continue
        runner.add(_make(name))
    return ",".join(runner.names()) or "off"


def _make(name: str) -> Sink:
    from resmagic.sinks.mlflow import MlflowSink  # the only one so far (NAMES)

    return MlflowSink(notebook=context.get("notebook"))


def states() -> list[SinkState]:
    """Each running sink's counts: sent, queued, dropped, failures."""
    return runner.states()


def flush(timeout: float = EXIT_TIMEOUT_S) -> bool:
    """Wait until every report so far was handed to the sinks, at most ``timeout`` seconds."""
    return runner.flush(timeout)
