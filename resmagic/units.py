"""The one formatter for bytes and seconds: every renderer and log line goes through here."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "format_bytes",
    "format_delta",
    "format_seconds",
    "format_table",
    "scale_numbers",
    "scale_unit",
]

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: int | None) -> str:
    """Return ``n`` bytes in binary units with three significant digits, e.g. ``"1.21 GiB"``."""
    if n is None:
        return "n/a"
    unit = _unit_of(n)
    return f"{_number(n, abs(n) / 1024**unit, unit)} {_BYTE_UNITS[unit]}"


def _unit_of(n: int) -> int:
    """The index in ``_BYTE_UNITS`` of the unit ``n`` bytes are written in."""
    size = float(abs(n))
    unit = 0
    # Thresholds are where the printed number rounds up ("1024 KiB" is "1.00 MiB").
    while size >= 1023.5 and unit < len(_BYTE_UNITS) - 1:
        size /= 1024
        unit += 1
    return unit


def _number(n: int, size: float, unit: int) -> str:
    """``size`` (``abs(n)`` already in the unit) with three significant digits, bytes whole."""
    minus = "-" if n < 0 else ""
    if unit == 0:
        return f"{minus}{int(size)}"
    if size >= 99.95:
        return f"{minus}{size:.0f}"
    if size >= 9.995:
        return f"{minus}{size:.1f}"
    return f"{minus}{size:.2f}"


def scale_unit(values: list[int]) -> list[str]:
    """Each of ``values`` in the unit :func:`format_bytes` picks for the largest of them.

    One unit on a line, so the numbers compare at a glance: 900 MiB and 1.2 GiB read
    ``["0.88 GiB", "1.20 GiB"]``.
    """
    numbers, unit = scale_numbers(values)
    return [f"{number} {unit}" for number in numbers]


def scale_numbers(values: Sequence[int]) -> tuple[list[str], str]:
    """:func:`scale_unit`'s numbers and their one unit, apart (watch's line per cell, C4)."""
    unit = _unit_of(max(values, key=abs, default=0))
    scale = 1024**unit
    return [_number(n, abs(n) / scale, unit) for n in values], _BYTE_UNITS[unit]


def format_delta(n: int) -> str:
    """Return a signed byte difference, e.g. ``"+12.0 MiB"``, ``"-3.00 KiB"`` or ``"±0 B"``."""
    if n == 0:
        return "±0 B"
    text = format_bytes(n)
    return text if n < 0 else "+" + text


def format_seconds(s: float) -> str:
    """Return a duration with a unit that keeps three significant digits, e.g. ``"840 ms"``."""
    if s < 0:
        return "-" + format_seconds(-s)
    # Round before splitting, so 119.7 s is "2 min 0 s", never "1 min 60 s".
    if s >= 3599.5:
        hours, rest = divmod(round(s), 3600)
        return f"{hours} h {rest // 60} min"
    if s >= 60:
        minutes, rest = divmod(round(s), 60)
        return f"{minutes} min {rest} s"
    # Every report line formats two of these: the units written out, one comparison each
    # (issue 26, C4: the loop over the units and a round() per unit cost more than the
    # line's other parts). ``value >= 0.9995`` is ``round(value, 3) >= 1`` exactly: the float
    # 0.9995 is a little above the decimal 0.9995, so round() takes it up to 1; the float
    # below it rounds to 0.999. tests/test_units.py compares the text with the loop's.
    value = s / 1.0
    if value >= 0.9995:  # 0.9996 s is "1 s", not "1000 ms"
        return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"
    value = s / 1e-3
    if value >= 0.9995:
        return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"
    value = s / 1e-6
    if value >= 0.9995:
        return f"{value:.3g} µs" if value < 100 else f"{value:.0f} µs"
    return f"{s * 1e9:.0f} ns"


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Rows of text (the first is the header) as left-aligned columns two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
