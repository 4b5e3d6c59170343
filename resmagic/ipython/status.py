"""``%resmagic status``: what each probe can measure here, and the state of every part.

Probes (the one table, :data:`resmagic.probes.table.PROBES`), the sampler, the history, the
run store, watch mode, the guard, the sinks and the status bar item, one line each.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from resmagic.bus import history
from resmagic.config import settings
from resmagic.probes.table import PROBES
from resmagic.redact import redact
from resmagic.sampler import sampler

if TYPE_CHECKING:
    from resmagic.ipython.session import Session
    from resmagic.ipython.watch import Watcher

__all__ = ["status_text", "watch_line"]


def watch_line(watcher: Watcher) -> str:
    """``watch: on (gpu_scope, timed; log PATH)`` or ``watch: off``."""
    if watcher.options is None:
        return "watch: off"
    options = watcher.options
    log = f"; {watcher.log.describe()}" if watcher.log is not None else ""
    return f"watch: on ({', '.join(options.scopes)}{log})"


def status_text(session: Session | None = None) -> str:
    """What each probe can measure here, why not where it cannot, and the sampler's state.

    With a session, also its modes (watch, guard) and the status bar's note.
    """
    lines = [f"  {probe.status()}" for probe in PROBES]
    state = "running" if sampler.running else "stopped"
    lines.append(f"  sampler: {state}, every {settings.sample_interval:g} s")
    kept = len(history())
    lines.append(
        f"  history: {kept} report{'' if kept == 1 else 's'} (limit {settings.history_limit})"
    )
    store = settings.store or "off"
    lines.append(f"  run store: {store} (limit {settings.store_limit} reports){_not_stored()}")
    lines.append("  " + (watch_line(session.watcher) if session is not None else "watch: off"))
    lines.append("  " + (session.guard.state() if session is not None else "guard: off"))
    lines.extend(f"  {line}" for line in _sink_lines())
    note = session.usage_note if session is not None else ""
    if note:
        lines.append(f"  status bar: {note}")
    return "resmagic status\n" + "\n".join(lines)


def _not_stored() -> str:
    """What the store did not keep: writes its writer dropped or failed, reports past a cap.

    ``; 12 writes lost (...)``, ``; 99000 reports not stored (...)``; "" when nothing.
    """
    loaded = sys.modules.get("resmagic.store.recorder")  # not imported here if never used
    if loaded is None:
        return ""
    lost, past = loaded.recorder.lost, loaded.recorder.cap.past
    text = ""
    if lost:
        text += (
            f"; {lost} writes lost (its queue was full, or writing failed; said when it happened)"
        )
    if past:
        text += f"; {past} reports not stored (past their cell's store_per_cell)"
    return text


def _sink_lines() -> list[str]:
    if settings.sink == "off":
        return ["sink: off"]
    from resmagic import sinks  # imported by setting sink=, so already loaded

    # The MLflow URI may carry a password: the status line is saved with the notebook.
    return [redact(f"sink {state.summary()}") for state in sinks.states()]
