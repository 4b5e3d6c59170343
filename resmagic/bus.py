"""The session's reports: the history, the bus that carries them on, the cell number.

Every published report is appended to :func:`history` (bounded by
``settings.history_limit``), handed to the run store's slot while ``settings.store`` is set,
to each subscriber (the sink thread, the live table, a user's callback), then to the
listeners of that report alone (the experiment logs its scope was opened in).

The bus knows none of them: the slots and the subscriber list are filled from above
(:mod:`resmagic.wiring` plugs the store in, the IPython layer the cell's number and id), as
IPython's ``EventManager`` never imports what registers with it.
"""

from __future__ import annotations

import threading
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from resmagic.config import settings

if TYPE_CHECKING:
    import pandas

    from resmagic.report import Report

__all__ = [
    "clear_history",
    "current_cell",
    "current_cell_id",
    "history",
    "history_frame",
    "publish",
    "set_cell_id_provider",
    "set_cell_provider",
    "set_store",
    "subscribe",
]

_lock = threading.Lock()  # resizing and clearing the history; publish takes none
# Bounded by its maxlen, which drops the oldest report atomically as a new one goes in (a
# trim per publish cost 0.24 us and the lock 0.16: issue 26); re-made when the limit changes.
_history: deque[Report] = deque(maxlen=settings.history_limit)
# A tuple, replaced (never changed) on subscribe and unsubscribe: publish reads it unlocked.
_subscribers: tuple[Callable[[Report], None], ...] = ()
_cell_provider: Callable[[], int | None] | None = None
_cell_id_provider: Callable[[], str | None] | None = None
_store: Callable[[Report], None] | None = None


def set_store(store: Callable[[Report], None] | None) -> Callable[[Report], None] | None:
    """Fill the run store's slot: called first with every report while ``settings.store`` is set.

    A slot, not a subscriber: the store hears a report before anyone else, only while the
    setting names a file, and its failure has a warning of its own (:mod:`resmagic.wiring`
    fills it). Returns what the slot held before.
    """
    global _store
    before, _store = _store, store
    return before


def set_cell_provider(provider: Callable[[], int | None] | None) -> None:
    """Tell scopes how to learn the current cell number (the IPython layer sets this)."""
    global _cell_provider
    _cell_provider = provider


def current_cell() -> int | None:
    """The execution count of the running cell, or None outside IPython."""
    provider = _cell_provider
    return provider() if provider is not None else None


def set_cell_id_provider(provider: Callable[[], str | None] | None) -> None:
    """Tell subscribers how to learn the running cell's notebook id (the IPython layer sets it)."""
    global _cell_id_provider
    _cell_id_provider = provider


def current_cell_id() -> str | None:
    """The notebook's id of the running cell (Jupyter sends it), or None.

    Ask on the thread that publishes a report, while its cell runs: the IPython layer
    answers for the main thread only (another thread gets None).
    """
    provider = _cell_id_provider
    return provider() if provider is not None else None


def publish(report: Report, listeners: Sequence[Callable[[Report], None]] = ()) -> None:
    """Append ``report`` to the history, hand it to every subscriber, then to ``listeners``.

    ``listeners`` are the sinks of this report alone (the logs the scope was opened in). A
    subscriber or listener that raises is reported as a warning and does not stop the others,
    nor the scope that published.
    """
    kept = _history
    if kept.maxlen != settings.history_limit:
        kept = _resize()
    kept.append(report)
    if kept is not _history:  # re-made by another thread between the two lines above
        _keep_late(report)
    if settings.store:
        _to_store(report)
    subscribers = _subscribers
    if subscribers or listeners:
        for callback in (*subscribers, *listeners):
            try:
                callback(report)
            except Exception as exc:
                warnings.warn(
                    f"resmagic: a report sink failed: {exc!r}", RuntimeWarning, stacklevel=2
                )


def _resize() -> deque[Report]:
    """The history re-made with the new ``settings.history_limit`` (the newest kept)."""
    global _history
    with _lock:
        if _history.maxlen != settings.history_limit:
            _history = deque(_history, maxlen=settings.history_limit)
        return _history


def _keep_late(report: Report) -> None:
    """Append ``report`` to the re-made history unless the copy already has it."""
    with _lock:
        if not any(kept is report for kept in _history):
            _history.append(report)


def _to_store(report: Report) -> None:
    store = _store
    if store is None:
        return
    try:
        store(report)
    except Exception as exc:  # the store must never fail the scope that published
        warnings.warn(f"resmagic: the run store failed: {exc!r}", RuntimeWarning, stacklevel=3)


def subscribe(callback: Callable[[Report], None]) -> Callable[[], None]:
    """Receive every report published from now on; returns the function that unsubscribes."""
    global _subscribers
    with _lock:
        _subscribers = (*_subscribers, callback)

    def unsubscribe() -> None:
        global _subscribers
        with _lock:
            if callback in _subscribers:
                at = _subscribers.index(callback)
                _subscribers = _subscribers[:at] + _subscribers[at + 1 :]

    return unsubscribe


def history() -> list[Report]:
    """Every report of this session, oldest first (bounded by ``settings.history_limit``)."""
    kept = _history
    if kept.maxlen != settings.history_limit:
        kept = _resize()  # the limit may have been lowered since the last publish
    return list(kept)


def clear_history() -> None:
    """Forget every report so far."""
    with _lock:
        _history.clear()


def history_frame() -> pandas.DataFrame:
    """The history as a pandas DataFrame: one row per report and device (tidy form).

    ``started_at`` is a timezone-aware (UTC) timestamp, byte columns are nullable
    ``Int64``, ``cell`` is the cell's number. Reports without devices (``timed``,
    ``experiment_log``, ``db_transaction``) take one row with empty device columns.

    Raises:
        ImportError: pandas is not installed; the message says how to install it.
    """
    try:
        import pandas
    except ImportError as exc:
        msg = "history_frame() needs pandas: pip install pandas (or use resmagic.history())"
        raise ImportError(msg) from exc
    from resmagic.tidy import as_frame, holders_cell, tidy_rows

    rows: list[dict[str, Any]] = []
    for report in history():
        record = report.to_dict()
        devices = record.pop("devices", None)
        if "notes" in record:
            record["notes"] = "; ".join(record["notes"])
        if "holders" in record:
            record["holders"] = holders_cell(record["holders"])
        rows += tidy_rows(record, devices)
    return as_frame(pandas, rows)
