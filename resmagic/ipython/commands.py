"""The subcommands of the ``%resmagic`` line magic."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from resmagic.config import settings
from resmagic.errors import ResmagicError
from resmagic.ipython.text import HistoryTable
from resmagic.probes import host, nvml, torch_cuda
from resmagic.report import clear_history, history
from resmagic.sampler import sampler

__all__ = ["NAMES", "run"]

NAMES = ("status", "history", "clear", "config", "help")


def run(magics: Any, command: str, args: list[str]) -> Any:
    """Run ``%resmagic COMMAND ARGS``; returns what the cell should display, if anything."""
    if command == "status":
        print(status_text())
        return None
    if command == "history":
        return HistoryTable(history()[-_count(args) :] if args else history())
    if command == "clear":
        n = len(history())
        clear_history()
        print(f"cleared {n} report{'s' * (n != 1)}")
        return None
    if command == "config":
        return _config(args)
    print(magics.resmagic.parser.format_help())
    return None


def status_text() -> str:
    """What each probe can measure here, why not where it cannot, and the sampler's state."""
    lines = [f"  {probe}" for probe in (host.status(), torch_cuda.status(), nvml.status())]
    state = "running" if sampler.running else "stopped"
    lines.append(f"  sampler: {state}, every {settings.sample_interval:g} s")
    lines.append(f"  history: {len(history())} reports (limit {settings.history_limit})")
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
