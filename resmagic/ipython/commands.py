"""What each ``%resmagic`` subcommand does, once its line is parsed.

The line's parser, and its ``--help``, is :mod:`resmagic.ipython.command_parser`.
"""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError

from resmagic.bus import clear_history, history
from resmagic.config import settings
from resmagic.errors import ResmagicError
from resmagic.ipython.command_parser import COMMANDS, NAMES, PARSER
from resmagic.ipython.session import Session
from resmagic.ipython.status import status_text, watch_line
from resmagic.ipython.views.live_table import live_table
from resmagic.ipython.views.text import HistoryTable
from resmagic.ipython.watch import WatchOptions
from resmagic.totals import clear_timings, timings

__all__ = ["NAMES", "run"]


def run(session: Session, args: list[str], doc: str = "") -> Any:
    """Run ``%resmagic ARGS`` in ``session``; returns what the cell should display, if anything.

    ``doc`` is what ``%resmagic help`` prints (the line magic's docstring).
    """
    if len(args) > 1 and args[0] in COMMANDS and {"-h", "--help"} & set(args[1:]):
        print(COMMANDS[args[0]].format_help().rstrip())  # `%resmagic watch --help`
        return None
    if args in (["-h"], ["--help"]):
        args = ["help"]  # `%resmagic --help`, as every magic takes it
    if args and args[0] not in NAMES:
        msg = f"%resmagic: unknown command {' '.join(args)!r}; use one of: "
        msg += ", ".join(NAMES) + " (%resmagic help explains each)"
        raise UsageError(msg)
    options = PARSER.parse_args(args or ["status"])
    if options.command == "help":
        print(inspect.cleandoc(doc))
        return None
    handler: Handler = _HANDLERS[options.command]
    return handler(session, options)


Handler = Callable[[Session, argparse.Namespace], Any]
"""One command: the session it runs in, its parsed options; what the cell displays."""


def _status(session: Session, options: argparse.Namespace) -> None:
    print(status_text(session))


def _history(session: Session, options: argparse.Namespace) -> HistoryTable:
    reports = history()
    return HistoryTable(reports[-options.count :] if options.count else reports)


def _runs(session: Session, options: argparse.Namespace) -> Any:
    from resmagic.ipython.views.runs_table import RunsTable
    from resmagic.store.query import recent
    from resmagic.store.recorder import recorder

    if not settings.store:
        print("the run store is off: %resmagic config store=on turns it on")
        return None
    stored = recorder.read(lambda conn: recent(conn, options.count))
    this = recorder.session.session if recorder.session is not None else None
    return RunsTable(stored, this)


def _top(session: Session, options: argparse.Namespace) -> Any:
    from resmagic.ipython.views.top_table import TopTable
    from resmagic.store import top_query
    from resmagic.store.ranking import plain_rows, top_of
    from resmagic.store.recorder import recorder

    if not settings.store:
        print("the run store is off: %resmagic config store=on turns it on")
        return None
    device = options.device  # as store.ranked_device gives it (the parser's converter)
    query = top_query(options.count, options.by, options.session, device, None)
    found = recorder.read(lambda conn: top_of(conn, query))
    mine = recorder.session
    where = os.path.basename(query.notebook) if query.notebook else "every notebook"
    scope = f"{where}, {'this kernel' if query.session is not None else 'every kernel session'}"
    if device is not None:
        scope += f", {device} only"
    return TopTable(plain_rows(found, query.by), query.by, scope, mine.session if mine else None)


def _clear(session: Session, options: argparse.Namespace) -> None:
    n = len(history())
    clear_history()
    print(f"cleared {n} report{'s' * (n != 1)}")


def _watch(session: Session, options: argparse.Namespace) -> None:
    if options.state is None:
        print(watch_line(session.watcher))
        return
    if options.state == "off":
        session.watcher.stop()
        print("resmagic watch off")
        return
    watch = WatchOptions(options.scopes, options.log, options.panel)
    session.watch(watch)
    names = ", ".join(watch.scopes) + (
        f"; one JSON line per cell in {watch.log}" if watch.log else ""
    )
    print(f"resmagic watch on: every cell from the next one runs inside {names}")


def _guard(session: Session, options: argparse.Namespace) -> None:
    guard = session.guard
    if options.state is None:
        print(guard.state())
    elif options.state == "off":
        guard.off()
        print("resmagic guard off")
    else:
        print(guard.on(options.at))


def _who(session: Session, options: argparse.Namespace) -> Any:
    from resmagic.holders import who  # the walk loads only when asked for

    return who(session.shell.user_ns, top=options.count, device=options.device)


def _panel(session: Session, options: argparse.Namespace) -> Any:
    if getattr(session.shell, "kernel", None) is not None:
        live_table.show(session.shell)
        return None
    print("the live table needs a Jupyter kernel; the history so far:")
    return HistoryTable(history())


def _timings(session: Session, options: argparse.Namespace) -> Any:
    table = timings()
    if options.clear:
        clear_timings()
    return table


def _config(session: Session, options: argparse.Namespace) -> None:
    if not options.pairs:
        for key, value in vars(settings).items():
            print(f"{key}={value}")
        return
    values = {}
    for pair in options.pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            msg = f"%resmagic config takes KEY=VALUE pairs, e.g. sample_interval=0.05; got {pair!r}"
            raise UsageError(msg)
        values[key.strip()] = value.strip()
    if values.get("store", "").lower() in ("on", "default", "true", "1"):
        values["store"] = session.store.default  # this profile's file, not only the default's
    try:
        settings.update(**values)
    except ResmagicError as exc:
        msg = f"%resmagic config: {exc}"
        raise UsageError(msg) from None
    if "store" in values:
        from resmagic.store.recorder import recorder

        recorder.writer()  # open the new file now, or stop writing the old one


_HANDLERS: dict[str, Handler] = {
    "status": _status,
    "history": _history,
    "runs": _runs,
    "top": _top,
    "clear": _clear,
    "config": _config,
    "watch": _watch,
    "guard": _guard,
    "who": _who,
    "panel": _panel,
    "timings": _timings,
}
