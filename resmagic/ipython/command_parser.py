"""``%resmagic``'s command line: one argparse parser per subcommand (its help is theirs).

A mistake in an option is a ``UsageError`` naming what to type, raised before anything runs
(the converters below check counts, scope lists, devices and shares).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from IPython.core.magic_arguments import MagicArgumentParser

from resmagic.config import MAX_COUNT
from resmagic.errors import ResmagicError
from resmagic.guard import DEFAULT_AT, parse_fraction
from resmagic.holders import device_name
from resmagic.ipython.watch import SCOPES

__all__ = ["COMMANDS", "NAMES", "PARSER", "parser"]


def _count(what: str) -> Callable[[str], int]:
    """A converter of one positive count of ``what`` (named in its error)."""

    def count(text: str) -> int:
        if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_COUNT:
            return int(text)
        msg = f"takes one positive number up to {MAX_COUNT} (how many {what}), not {text!r}"
        raise argparse.ArgumentTypeError(msg)

    return count


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


def _ranked_device(text: str) -> str:
    from resmagic.store import ranked_device

    try:
        return ranked_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("device ")) from None


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
    history_cmd.add_argument("count", nargs="?", type=_count("reports"), help="only the last N")
    runs = sub.add_parser(
        "runs",
        help="the run store's last reports, of every session",
        description="The run store's last N reports, of this kernel and every earlier one:"
        " when, which session (this one says so), notebook, cell, scope, status, time, memory."
        " resmagic.runs() gives them all as a DataFrame.",
    )
    runs.add_argument("count", nargs="?", type=_count("reports"), default=20, help="how many (20)")
    _add_top(sub)
    sub.add_parser("clear", help="forget the reports so far")
    config = sub.add_parser("config", help="show settings, or set KEY=VALUE ...")
    config.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    _add_watch(sub)
    _add_guard(sub)
    who = sub.add_parser("who", help="which variables hold the memory, largest first")
    who.add_argument("count", nargs="?", type=_count("rows"), default=10, help="how many rows")
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
        " (%resmagic config changes both).",
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
        description="This notebook's cells (where the kernel knows no notebook: every"
        " notebook's) ranked by what they used, read from the run store:"
        " across kernel restarts, and a cell the kernel died in ranks with what it had"
        " (status died). A cell run several times shows its last run and how many runs."
        " Memory ranks per device (host, cuda:N for torch's allocator, cuda:N.nvml; never"
        " workers or container, other processes' memory); without --device each cell by its"
        " largest. In Jupyter a click on a row goes to its cell. resmagic.top() gives the"
        " same rows as a DataFrame (a list of dicts without pandas).",
    )
    top.add_argument(
        "count", nargs="?", type=_count("cells"), default=10, help="how many cells (10)"
    )
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
        type=_ranked_device,
        help="rank this device only: host, cuda:N (torch's allocator), cuda:N.nvml (the"
        ' driver\'s count), a rank\'s: "rank R", "rank R cuda:N"',
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
        help="the share of the container limit at which to stop: 85%%, 85 or 0.85 (a"
        f" number above 1 is a percent; default {DEFAULT_AT * 100:.0f}%%)",
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


PARSER = parser()
"""The whole command line: ``PARSER.parse_args(["watch", "--scopes", "timed"])``."""
COMMANDS = _commands(PARSER)
"""Each command's own parser (its ``--help``)."""
NAMES = tuple(COMMANDS)
"""Every ``%resmagic`` command, in the order ``%resmagic help`` lists them."""
