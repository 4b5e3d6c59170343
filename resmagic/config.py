"""Process-wide settings, changed in code or with ``%resmagic config key=value``.

Values only: this module imports nothing above it. A setting whose owner lives higher up
(``sink=``: the sinks; ``store=``: the run store's path rules) is plugged in by that owner's
wiring (:mod:`resmagic.wiring`) through :func:`register`: a converter that checks and cleans
a value, and a hook told when the process-wide :data:`settings` take a new one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from resmagic.errors import OptionError

__all__ = ["MAX_COUNT", "Converter", "OnSet", "Settings", "register", "settings"]

Converter = Callable[[object], object]
"""Checks and cleans a raw value (a string from ``%resmagic config``); raises ``OptionError``."""

OnSet = Callable[[object], object]
"""Told the new value of the process-wide settings; returns the value that holds now."""

_converters: dict[str, Converter] = {}
_on_set: dict[str, OnSet] = {}


def register(key: str, *, convert: Converter | None = None, on_set: OnSet | None = None) -> None:
    """Plug in the owner of setting ``key``: its converter and its on-set hook.

    The converter checks every instance's values (a private ``Settings()`` too); the hook
    runs only when the process-wide :data:`settings` take a new value, after every value of
    the update is set.
    """
    if convert is not None:
        _converters[key] = convert
    if on_set is not None:
        _on_set[key] = on_set


@dataclass
class Settings:
    """What a user may tune; each field is validated when set through :meth:`update`.

    Attributes:
        history_limit: the most reports ``resmagic.history()`` keeps (oldest dropped first).
        sample_interval: seconds between two samples of the live sampler.
        sampler_linger: seconds the sampler thread waits for a new view after the last one
            left before it stops, so cells run back to back share one thread; 0 stops it
            at once.
        held_mib: a ``%%gpu_scope`` cell that leaves more than this many MiB (or 5 % of
            the device, if less) held gets a ``held by:`` line naming the holders; 0: never.
        watch_panel_s: in watch mode, a cell gets the full live panel once it has run this
            many seconds; a shorter one gets one compact line.
        watch_panel_mib: in watch mode, a cell whose memory rose (peak above start) or fell
            by more than this many MiB on any device gets the full panel however short.
        sink: where every report is also sent, off the cell path: ``"mlflow"``, or
            ``"off"`` (see :mod:`resmagic.sinks`). Setting it on the process-wide
            ``settings`` starts or stops the sink.
        store: the run store's SQLite file, "" for none: set at ``%load_ext`` to the
            profile's ``resmagic.sqlite``; in scripts "" unless set (``on``: that default).
        store_limit: the most reports the run store keeps (oldest dropped first).
        store_per_cell: the most reports of one scope and label the run store keeps from
            one cell run (a loop's blocks: ``with timed("step")`` 100,000 times would
            otherwise fill the store and push every other cell out of it). The rest still
            go to ``history()`` and the sinks, and ``timings()`` counts every ``timed``
            block. A measured cell's own reports are always kept.
        ranks_timeout_s: how long rank 0 of a ``gpu_scope(ranks=True)`` or
            ``timed(ranks=True)`` waits for the other ranks' records before it reports
            them missing (a rank that is late, stuck, dead or skipped the scope).
    """

    history_limit: int = 10_000
    sample_interval: float = 0.1
    sampler_linger: float = 1.0
    held_mib: int = 256
    watch_panel_s: float = 2.0
    watch_panel_mib: int = 256
    sink: str = "off"
    store: str = ""
    store_limit: int = 100_000
    store_per_cell: int = 1_000
    ranks_timeout_s: float = 60.0

    def update(self, **values: object) -> None:
        """Set fields by name, converting strings; :class:`OptionError` for a bad key or value."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        converted = {}
        for key, raw in values.items():
            if key not in fields:
                msg = f"unknown setting {key!r}; known settings: {', '.join(sorted(fields))}"
                raise OptionError(msg)
            converted[key] = _convert(key, raw)
        # All or nothing: a refused value leaves the settings as they were.
        for key, value in converted.items():
            setattr(self, key, value)
        if self is not settings:  # a private Settings() is only values
            return
        for key in converted:
            hook = _on_set.get(key)
            if hook is not None:
                setattr(self, key, hook(getattr(self, key)))


MAX_COUNT = 10**9
"""The largest count resmagic takes, from a setting or a command: SQLite's LIMIT, a slice
and a deque's ``maxlen`` all take it (reliability 2026-12-06 #8; 2**63 as ``history_limit``
failed every later cell)."""

# The lowest value of each integer setting (each at most MAX_COUNT), and the range of each
# seconds setting.
_INTEGERS = {
    "history_limit": 1,
    "held_mib": 0,
    "watch_panel_mib": 0,
    "store_limit": 1,
    "store_per_cell": 1,
}
_SECONDS = {
    "sample_interval": (0.001, 60.0),
    "sampler_linger": (0.0, 60.0),
    "watch_panel_s": (0.0, 3600.0),
    "ranks_timeout_s": (0.001, 86400.0),
}


def _convert(key: str, raw: object) -> object:
    convert = _converters.get(key)
    if convert is not None:
        return convert(raw)
    try:
        value: int | float
        if key in _INTEGERS:
            value = int(str(raw))
            ok = _INTEGERS[key] <= value <= MAX_COUNT
        else:
            value = float(str(raw))
            low, high = _SECONDS[key]
            ok = low <= value <= high
    except ValueError:
        ok = False
    if not ok:
        hint = f"an integer from {_INTEGERS.get(key, 1)} to {MAX_COUNT}"
        if key in _SECONDS:
            low, high = _SECONDS[key]
            hint = f"seconds between {low:g} and {high:g}"
        msg = f"bad value {raw!r} for {key}: expected {hint}, e.g. {key}={_default(key)}"
        raise OptionError(msg)
    return value


def _default(key: str) -> object:
    return next(f.default for f in dataclasses.fields(Settings) if f.name == key)


settings = Settings()
