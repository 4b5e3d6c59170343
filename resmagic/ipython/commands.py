"""The subcommands of the ``%resmagic`` line magic, parsed by argparse (its help is theirs)."""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from resmagic.bus import clear_history, history
from resmagic.config import settings
from resmagic.errors import ResmagicError
from resmagic.guard import DEFAULT_AT, parse_fraction
from resmagic.holders import device_name
from resmagic.ipython.session import Session
from resmagic.ipython.status import status_text, watch_line
from resmagic.ipython.views.live_table import live_table
from resmagic.ipython.views.text import HistoryTable
from resmagic.ipython.watch import SCOPES, WatchOptions
from resmagic.totals import clear_timings, timings

__all__ = ["NAMES", "parser", "run"]


_MOST = 10**9  # a count SQLite's LIMIT and a slice both take (reliability 2026-12-06 #8)


def _positive(text: str) -> int:
    if text.isascii() and text.isdigit() and 0 < int(text) <= _MOST:
        return int(text)
    msg = f"takes one positive number up to {_MOST} (how many reports), not {text!r}"
    raise argparse.ArgumentTypeError(msg)


def _scopes(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names or any(name not in SCOPES for name in names):
        msg = f"takes a comma list of {', '.join(SCOPES)}; got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    if len(set(names)) < len(names):  # each would measure the cell twice, on one line
        msg = f"names each scope once, e.g. gpu_scope,timed; got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return names


def _device(text: str) -> str:
    try:
        return device_name(text)
    except ResmagicError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _share(text: str) -> float:
    try:
        return parse_fraction(text)
    except ResmagicError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parser() -> MagicArgumentParser:
    """``%resmagic``'s parser: a mistake is a ``UsageError`` naming what to type."""
    top = MagicArgumentParser(prog="%resmagic", add_help=False)
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("status", help="what each probe can measure here, and why not")
    history_cmd = sub.add_parser("history", help="a table of this session's reports")
    history_cmd.add_argument("count", nargs="?", type=_positive, help="only the last N")
    runs = sub.add_parser(
        "runs",
        help="the run store's last reports, of every session",
        description="The run store's last N reports, of this kernel and every earlier one:"
        " when, which session (this one says so), notebook, cell, scope, status, time, memory."
        " resmagic.runs() gives them all as a DataFrame.",
    )
    runs.add_argument("count", nargs="?", type=_positive, default=20, help="how many (20)")
    _add_top(sub)
    sub.add_parser("clear", help="forget the reports so far")
    config = sub.add_parser("config", help="show settings, or set KEY=VALUE ...")
    config.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    _add_watch(sub)
    _add_guard(sub)
    who = sub.add_parser("who", help="which variables hold the memory, largest first")
    who.add_argument("count", nargs="?", type=_positive, default=10, help="how many rows")
    who.add_argument(
        "--device", type=_device, help="only this device: host, cuda:N (or N), or cuda (every GPU)"
    )
    sub.add_parser("panel", help="a live table of this session's reports")
    totals = sub.add_parser("timings", help="per-label totals of every timed run")
    totals.add_argument("--clear", action="store_true", help="then forget them")
    sub.add_parser("help", help="this text")
    return top


def _add_watch(sub: Any) -> None:
    watch = sub.add_parser(
        "watch",
        help="measure every cell; no argument: say whether it does",
        description="Every cell from the next one on runs inside the scopes, as if it began"
        " with their magics: one line per cell, the full panel for a cell that runs over"
        " watch_panel_s (2 s) or moves over watch_panel_mib (256 MiB) on a device"
        " (%%resmagic config changes both).",
    )
    watch.add_argument("state", nargs="?", choices=("on", "off"))
    watch.add_argument(
        "--scopes",
        type=_scopes,
        default=SCOPES,
        help="a comma list of gpu_scope and timed, each once (default: both)",
    )
    watch.add_argument(
        "--log",
        help="a JSON-lines file, one record per watched cell: a file or one to create (not a"
        " folder, device or FIFO)",
    )
    watch.add_argument("--no-panel", dest="panel", action="store_false", help="text, no widget")


def _add_top(sub: Any) -> None:
    top = sub.add_parser(
        "top",
        help="this notebook's cells that used the most, from the run store",
        description="This notebook's cells ranked by what they used, read from the run store:"
        " across kernel restarts, and a cell the kernel died in ranks with what it had"
        " (status died). A cell run several times shows its last run and how many runs."
        " Memory ranks per device (host, cuda:N for torch's allocator, cuda:N.nvml; never"
        " workers or container, other processes' memory); without --device each cell by its"
        " largest. In Jupyter a click on a row goes to its cell. resmagic.top() gives the"
        " same rows as a DataFrame (a list of dicts without pandas).",
    )
    top.add_argument("count", nargs="?", type=_positive, default=10, help="how many cells (10)")
    top.add_argument(
        "--by",
        choices=("peak", "held", "time"),
        default="peak",
        help="peak: the peak above the memory in use when the cell started (default);"
        " held: in use after the cell minus before; time: wall seconds",
    )
    top.add_argument(
        "--session",
        choices=("this", "all"),
        default="all",
        help="all: every kernel session of this notebook (default); this: this kernel's only",
    )
    top.add_argument(
        "--device",
        help="rank this device only: host, cuda:N (torch's allocator), cuda:N.nvml (the"
        " driver's count)",
    )


def _add_guard(sub: Any) -> None:
    guard = sub.add_parser(
        "guard",
        help="stop a cell with MemoryLimitError before the container's OOM killer kills the"
        " kernel; no argument: say whether it is on",
        description="While on, the sampler compares the container's working set with its"
        " memory limit every sample_interval (0.1 s); past the share given by --at it stops"
        " the running cell with MemoryLimitError, and the kernel keeps its variables. One"
        " allocation that jumps past the limit between two samples can still be OOM-killed.",
    )
    guard.add_argument("state", nargs="?", choices=("on", "off"))
    guard.add_argument(
        "--at",
        type=_share,
        default=DEFAULT_AT,
        help="the share of the container limit at which to stop, e.g. 85%% (default"
        f" {DEFAULT_AT * 100:.0f}%%)",
    )


def _commands(top: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's own parser, named ``%resmagic COMMAND`` in its help."""
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            choices: dict[str, argparse.ArgumentParser] = action.choices
            for name, command in choices.items():
                command.prog = f"resmagic {name}"  # the help formatter adds the "%"
            return choices
    return {}


_PARSER = parser()
_COMMANDS = _commands(_PARSER)
NAMES = tuple(_COMMANDS)
"""Every ``%resmagic`` command, in the order ``%resmagic help`` lists them."""


def run(session: Session, args: list[str], doc: str = "") -> Any:
    """Run ``%resmagic ARGS`` in ``session``; returns what the cell should display, if anything.

    ``doc`` is what ``%resmagic help`` prints (the line magic's docstring).
    """
    if len(args) > 1 and args[0] in _COMMANDS and {"-h", "--help"} & set(args[1:]):
        print(_COMMANDS[args[0]].format_help().rstrip())  # `%resmagic watch --help`
        return None
    if args in (["-h"], ["--help"]):
        args = ["help"]  # `%resmagic --help`, as every magic takes it
    if args and args[0] not in NAMES:
        msg = f"%resmagic: unknown command {' '.join(args)!r}; use one of: "
        msg += ", ".join(NAMES) + " (%resmagic help explains each)"
        raise UsageError(msg)
    options = _PARSER.parse_args(args or ["status"])
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
    device = options.device
    if device is not None and device.isascii() and device.isdigit():
        device = f"cuda:{device}"
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
