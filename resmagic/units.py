"""The one formatter for bytes and seconds: every renderer and log line goes through here."""

from __future__ import annotations

__all__ = ["format_bytes", "format_delta", "format_seconds"]

_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(n: int | None) -> str:
    """Return ``n`` bytes in binary units with three significant digits, e.g. ``"1.21 GiB"``."""
    if n is None:
        return "n/a"
    size = float(abs(n))
    unit = 0
    while size >= 1024 and unit < len(_BYTE_UNITS) - 1:
        size /= 1024
        unit += 1
    sign = "-" if n < 0 else ""
    if unit == 0:
        return f"{sign}{int(size)} B"
    if size >= 100:
        return f"{sign}{size:.0f} {_BYTE_UNITS[unit]}"
    if size >= 10:
        return f"{sign}{size:.1f} {_BYTE_UNITS[unit]}"
    return f"{sign}{size:.2f} {_BYTE_UNITS[unit]}"


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
    if s >= 3600:
        hours, rest = divmod(s, 3600)
        return f"{int(hours)} h {int(rest // 60)} min"
    if s >= 60:
        minutes, rest = divmod(s, 60)
        return f"{int(minutes)} min {rest:.0f} s"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if s >= scale:
            value = s / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{s * 1e9:.0f} ns"
