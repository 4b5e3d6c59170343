"""Loading builds one session per shell and registers its magics; unloading undoes exactly that.

The :class:`~resmagic.ipython.session.Session` builds the shell's objects; this module adds
what spans shells: the traitlets config, the magics' registration, the bus's cell number,
the sinks, and what unload stops for the whole process (the sampler, the live table).
"""

from __future__ import annotations

import sys
from typing import Any

from traitlets import Bool, List, Unicode
from traitlets.config import Configurable

from resmagic import bus
from resmagic.config import settings
from resmagic.errors import OptionError
from resmagic.ipython.cells.options import SCOPES
from resmagic.ipython.magics import ResMagics
from resmagic.ipython.session import Session

__all__ = ["ResMagic", "load", "unload"]


class ResMagic(Configurable):
    """resmagic's IPython configuration, set e.g. in ``ipython_config.py``.

    Example::


        c.ResMagic.watch = True                 # measure every cell, no magic needed
        c.ResMagic.watch_scopes = ["timed"]     # default: gpu_scope and timed
        c.ResMagic.watch_log = "~/runs/session.jsonl"
        c.ResMagic.sinks = ["mlflow"]           # every report to MLflow, off the cell path
        c.ResMagic.store = ""                   # no run store (default: the profile's)
    """

    watch = Bool(False, help="Measure every cell from load on (%resmagic watch on).").tag(
        config=True
    )
    watch_scopes = List(
        Unicode(), default_value=list(SCOPES), help="Scopes every watched cell runs inside."
    ).tag(config=True)
    watch_log = Unicode("", help="A JSON-lines file: one record per watched cell.").tag(config=True)
    watch_panel = Bool(True, help="Show the live panel under watched cells.").tag(config=True)
    sinks = List(
        Unicode(), default_value=[], help="Trackers every report is sent to: 'mlflow'."
    ).tag(config=True)
    store = Unicode(
        None,
        allow_none=True,
        help='The run store\'s SQLite file; "" for none. Default: resmagic.sqlite in the profile.',
    ).tag(config=True)


_sessions: dict[int, tuple[Session, ResMagics]] = {}


def load(ip: Any) -> None:
    """Register the magics on ``ip``, the cell runner's hooks, and watch mode if configured."""
    config = ResMagic(parent=ip)
    session = Session(ip, ResMagics.parsers(), config.store)
    magics = ResMagics(ip, session)
    ip.register_magics(magics)
    # Process-wide, so the last shell loaded is the one reports take their cell from
    # (CONTRIBUTING.md, "Per-shell and process-wide state").
    bus.set_cell_provider(lambda: session.cell)
    bus.set_cell_id_provider(session.cell_id)  # the sinks' cell.N.id tags
    _sessions[id(ip)] = (session, magics)
    session.load()
    if config.watch:
        from resmagic.ipython.watch import WatchOptions

        options = WatchOptions(
            tuple(config.watch_scopes), config.watch_log or None, config.watch_panel
        )
        session.watch(options)
    _start_sinks(ip, config.sinks)


def _start_sinks(ip: Any, names: list[str]) -> None:
    notebook = ip.user_ns.get("__session__") or ip.user_ns.get("__vsc_ipynb_file__")
    if notebook:  # ipykernel's (from JPY_SESSION_NAME), VS Code's: the sinks' run tags
        from resmagic import sinks

        sinks.context["notebook"] = str(notebook)
    if not names:
        return
    try:
        settings.update(sink=",".join(names))
    except OptionError as exc:  # a bad config file must not stop the extension loading
        print(f"resmagic: c.ResMagic.sinks: {exc}", file=sys.stderr)


def unload(ip: Any) -> None:
    """Remove our magics (only if still ours), hooks and watch mode; stop the sampler and sinks."""
    loaded = _sessions.pop(id(ip), None)
    if loaded is None:
        return
    session, magics = loaded
    session.unload()
    manager = ip.magics_manager
    if manager.registry.get(type(magics).__name__) is magics:
        del manager.registry[type(magics).__name__]
    for kind, names in magics.magics.items():
        table = manager.magics[kind]
        for name in names:
            if getattr(table.get(name), "__self__", None) is magics:
                del table[name]
    # Each imported only once used (issue 26): what was never imported has nothing to stop.
    table = sys.modules.get("resmagic.ipython.views.live_table")
    if table is not None:
        table.live_table.close()
    panel = sys.modules.get("resmagic.ipython.views.cell_panel")
    if panel is not None:  # imported only once a panel was shown
        panel.close_all()
    sampler = sys.modules.get("resmagic.sampler")
    if sampler is not None:
        sampler.sampler.shutdown()
    if settings.sink != "off":
        settings.update(sink="off")  # sends what is queued and ends the run (10 s at most)
    bus.set_cell_provider(None)
    bus.set_cell_id_provider(None)
