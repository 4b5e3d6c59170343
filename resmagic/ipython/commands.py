"""The subcommands of the ``%resmagic`` line magic."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from resmagic.bus import clear_history, history
from resmagic.config import settings
from resmagic.errors import ResmagicError
from resmagic.ipython.text import HistoryTable
from resmagic.ipython.watch import parse_watch
from resmagic.probes import host, nvml, torch_cuda
from resmagic.sampler import sampler

__all__ = ["NAMES", "run"]

NAMES = ("status", "history", "clear", "config", "watch", "panel", "help")


def run(magics: Any, command: str, args: list[str]) -> Any:
    """Run ``%resmagic COMMAND ARGS``; returns what the cell should display, if anything."""
    if command not in NAMES or (args and command in ("status", "clear", "panel", "help")):
        msg = f"%resmagic: unknown command {' '.join([command, *args])!r}; use one of: "
        msg += ", ".join(NAMES) + " (%resmagic help explains each)"
        raise UsageError(msg)
    if command == "watch":
        return _watch(magics, args)
    if command == "status":
        print(status_text(magics))
        return None
    if command == "panel":
        return _panel(magics)
    if command == "history":
        return HistoryTable(history()[-_count(args) :] if args else history())
    if command == "clear":
        n = len(history())
        clear_history()
        print(f"cleared {n} report{'s' * (n != 1)}")
        return None
    if command == "config":
        return _config(args)
    print(magics.resmagic.__doc__)
    return None


def _watch(magics: Any, args: list[str]) -> None:
    on, options = parse_watch(args)
    watcher = magics.watcher
    if on:
        watcher.start(options)
        names = ", ".join(options.scopes) + (
            f", experiment_log {options.log}" if options.log else ""
        )
        print(f"resmagic watch on: every cell from the next one runs inside {names}")
    else:
        watcher.stop()
        print("resmagic watch off")


def _panel(magics: Any) -> Any:
    from resmagic.ipython import panel  # ipywidgets loads only when a panel is shown

    if panel.available(magics.shell):
        panel.dashboard.show()
        return None
    print("the live dashboard needs a Jupyter kernel with ipywidgets; the history so far:")
    return HistoryTable(history())


def status_text(magics: Any = None) -> str:
    """What each probe can measure here, why not where it cannot, and the sampler's state."""
    lines = [f"  {probe}" for probe in (host.status(), torch_cuda.status(), nvml.status())]
    state = "running" if sampler.running else "stopped"
    lines.append(f"  sampler: {state}, every {settings.sample_interval:g} s")
    lines.append(f"  history: {len(history())} reports (limit {settings.history_limit})")
    watcher = getattr(magics, "watcher", None)
    if watcher is not None and watcher.options is not None:
        lines.append(f"  watch: on ({', '.join(o for o, _ in watcher.options.lines())})")
    else:
        lines.append("  watch: off")
    return "resmagic status\n" + "\n".join(lines)


def _count(args: list[str]) -> int:
    if len(args) == 1 and args[0].isdigit() and int(args[0]) > 0:
        return int(args[0])
    msg = f"%resmagic history takes one positive number (how many reports), not {' '.join(args)!r}"
    raise UsageError(msg)


def _config(args: list[str]) -> None:
    if not args:
        for key, value in vars(settings).items():
            print(f"{key}={value}")
        return
    values = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            msg = f"%resmagic config takes KEY=VALUE pairs, e.g. sample_interval=0.05; got {arg!r}"
            raise UsageError(msg)
        values[key.strip()] = value.strip()
    try:
        settings.update(**values)
    except ResmagicError as exc:
        msg = f"%resmagic config: {exc}"
        raise UsageError(msg) from None
