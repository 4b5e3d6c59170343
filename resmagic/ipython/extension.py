"""Loading registers the magics and hooks; unloading undoes exactly that."""

from __future__ import annotations

import sys
from typing import Any

from traitlets import Bool, List, Unicode
from traitlets.config import Configurable

from resmagic import bus
from resmagic.config import settings
from resmagic.errors import OptionError
from resmagic.ipython.cells.header import HeaderTransformer
from resmagic.ipython.cells.runner import CellRunner
from resmagic.ipython.magics import ResMagics
from resmagic.ipython.runstore import StoreHook
from resmagic.ipython.usage_request import UsageHandler
from resmagic.ipython.usage_request import install as install_usage
from resmagic.ipython.views.live_table import dashboard
from resmagic.ipython.watch import SCOPES, WatchOptions
from resmagic.sampler import sampler

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


_loaded: dict[int, tuple[ResMagics, CellRunner, StoreHook]] = {}
_usage: dict[int, UsageHandler] = {}


def load(ip: Any) -> None:
    """Register the magics on ``ip``, the cell runner's hooks, and watch mode if configured."""
    magics = ResMagics(ip)
    ip.register_magics(magics)
    header = HeaderTransformer(magics.owns, magics.layers.layer, magics.layers.expand)
    runner = CellRunner(ip, header, magics.watcher, magics.output)
    magics.watcher.on_start = runner.arm
    runner.register()
    magics.output.register()
    bus.set_cell_provider(lambda: runner.cell)
    usage, magics.usage_note = install_usage(ip)  # the status bar item's readings
    if usage is not None:
        _usage[id(ip)] = usage
    config = ResMagic(parent=ip)
    store = StoreHook(ip, config.store)
    runner.on_open, runner.on_close = store.opened, store.closed
    magics.layers.last_time = store.last_time
    magics.layers.last_run = store.last_run
    magics.store = store
    _loaded[id(ip)] = (magics, runner, store)
    store.load()
    if config.watch:
        options = WatchOptions(
            tuple(config.watch_scopes), config.watch_log or None, config.watch_panel
        )
        magics.watcher.start(options)
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
    loaded = _loaded.pop(id(ip), None)
    if loaded is None:
        return
    magics, runner, store = loaded
    usage = _usage.pop(id(ip), None)
    if usage is not None:
        usage.unregister()
    magics.watcher.stop()
    magics.guard.off()
    runner.unregister()
    store.unload()
    magics.output.unregister()
    manager = ip.magics_manager
    if manager.registry.get(type(magics).__name__) is magics:
        del manager.registry[type(magics).__name__]
    for kind, names in magics.magics.items():
        table = manager.magics[kind]
        for name in names:
            if getattr(table.get(name), "__self__", None) is magics:
                del table[name]
    dashboard.close()
    panel = sys.modules.get("resmagic.ipython.views.cell_panel")
    if panel is not None:  # imported only once a panel was shown
        panel.close_all()
    sampler.shutdown()
    if settings.sink != "off":
        settings.update(sink="off")  # sends what is queued and ends the run (10 s at most)
    bus.set_cell_provider(None)
