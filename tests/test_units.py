"""The one formatter: three significant digits, binary units, and no "60 s" in a minute."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resmagic.units import format_bytes, format_delta, format_seconds, scale_numbers, scale_unit

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (None, "n/a"),
        (0, "0 B"),
        (1, "1 B"),
        (1023, "1023 B"),
        (1024, "1.00 KiB"),
        (1536, "1.50 KiB"),
        (10 * KiB, "10.0 KiB"),
        (100 * KiB, "100 KiB"),
        (int(1.21 * GiB), "1.21 GiB"),
        (-1536, "-1.50 KiB"),
        (1 << 50, "1.00 PiB"),
        (1 << 60, "1024 PiB"),  # no unit above PiB: the number grows instead
    ],
)
def test_format_bytes_binary_units_three_digits(n: int | None, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (MiB - 1, "1.00 MiB"),  # not "1024 KiB"
        (GiB - 1, "1.00 GiB"),
        (100 * KiB - 1, "100 KiB"),  # not "100.0 KiB"
        (10 * KiB - 1, "10.0 KiB"),  # not "10.00 KiB"
        (-(MiB - 1), "-1.00 MiB"),
    ],
)
def test_format_bytes_rounding_up_moves_to_the_next_unit(n: int, text: str) -> None:
    assert format_bytes(n) == text


def test_format_delta_is_signed_and_zero_is_plus_minus() -> None:
    assert format_delta(0) == "±0 B"
    assert format_delta(12 * MiB) == "+12.0 MiB"
    assert format_delta(-3 * KiB) == "-3.00 KiB"


@pytest.mark.parametrize(
    ("s", "text"),
    [
        (0.0, "0 ns"),
        (5e-7, "500 ns"),
        (1.5e-6, "1.5 µs"),
        (0.84, "840 ms"),
        (1.0, "1 s"),
        (12.345, "12.3 s"),
        (60.0, "1 min 0 s"),
        (3600.0, "1 h 0 min"),
        (3 * 86400.0, "72 h 0 min"),
        (-0.5, "-500 ms"),
    ],
)
def test_format_seconds_picks_a_unit_with_three_digits(s: float, text: str) -> None:
    assert format_seconds(s) == text


@pytest.mark.parametrize(
    ("s", "text"),
    [
        (0.99996, "1 s"),  # not "1000 ms"
        (0.0009999, "1 ms"),  # not "1000 µs"
        (119.7, "2 min 0 s"),  # not "1 min 60 s"
        (3599.9, "1 h 0 min"),  # not "59 min 60 s"
    ],
)
def test_format_seconds_rounding_up_moves_to_the_next_unit(s: float, text: str) -> None:
    assert format_seconds(s) == text


def _format_seconds_by_the_loop(s: float) -> str:
    """``format_seconds`` as it was written before issue 26 (C4): the reference text."""
    if s < 0:
        return "-" + _format_seconds_by_the_loop(-s)
    if s >= 3599.5:
        hours, rest = divmod(round(s), 3600)
        return f"{hours} h {rest // 60} min"
    if s >= 60:
        minutes, rest = divmod(round(s), 60)
        return f"{minutes} min {rest} s"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        value = s / scale
        if round(value, 3) >= 1:
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{s * 1e9:.0f} ns"


def _near_the_edges() -> list[float]:
    """Values around every place the unit or the digits change, a few ulps either side."""
    edges = [0.9994, 0.9995, 0.99950000001, 0.9996, 9.995, 99.95, 99.5, 100.0, 59.5, 60.0]
    out: list[float] = [0.0, 5e-324, 1e-300, 59.999999, 3599.4999, 3599.5, 1e9]
    for edge in edges:
        for scale in (1.0, 1e-3, 1e-6, 1e-9):
            x = edge * scale
            for _ in range(4):
                out += [x, -x]
                x = math.nextafter(x, math.inf)
            x = edge * scale
            for _ in range(4):
                x = math.nextafter(x, 0.0)
                out += [x, -x]
    return out


def test_format_seconds_is_the_loops_text_at_every_edge() -> None:
    for s in _near_the_edges():
        assert format_seconds(s) == _format_seconds_by_the_loop(s), s


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-(10**6), 10**6))
@settings(max_examples=3000, deadline=None)
def test_format_seconds_is_the_loops_text_for_any_duration(s: float) -> None:
    assert format_seconds(s) == _format_seconds_by_the_loop(s)


def test_format_seconds_is_the_loops_text_for_durations_of_every_size() -> None:
    rng = random.Random(26)
    for _ in range(100_000):
        s = 10 ** rng.uniform(-10, 4) * rng.choice((1, -1))
        assert format_seconds(s) == _format_seconds_by_the_loop(s), s
    assert format_seconds(math.nan) == _format_seconds_by_the_loop(math.nan)


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _digits_before(sign: int, size: float, unit: str) -> str:
    minus = "-" if sign < 0 else ""
    if unit == "B":
        return f"{minus}{int(size)} B"
    if size >= 99.95:
        return f"{minus}{size:.0f} {unit}"
    if size >= 9.995:
        return f"{minus}{size:.1f} {unit}"
    return f"{minus}{size:.2f} {unit}"


def _format_bytes_before(n: int) -> str:
    """``format_bytes`` as it was before issue 26 (C4): the reference text."""
    size = float(abs(n))
    unit = 0
    while size >= 1023.5 and unit < len(_UNITS) - 1:
        size /= 1024
        unit += 1
    return _digits_before(-1 if n < 0 else 1, size, _UNITS[unit])


def _scale_unit_before(values: list[int]) -> list[str]:
    unit = _format_bytes_before(max(values, key=abs, default=0)).split(" ")[1]
    scale = 1024 ** _UNITS.index(unit)
    return [_digits_before(-1 if n < 0 else 1, abs(n) / scale, unit) for n in values]


_BYTES = st.integers(-(1 << 62), 1 << 62) | st.integers(-(1 << 80), 1 << 80)


@given(_BYTES)
@settings(max_examples=3000, deadline=None)
def test_format_bytes_is_the_texts_it_was(n: int) -> None:
    assert format_bytes(n) == _format_bytes_before(n)


@given(st.lists(_BYTES, max_size=5))
@settings(max_examples=2000, deadline=None)
def test_scale_unit_and_its_numbers_are_the_texts_they_were(values: list[int]) -> None:
    before = _scale_unit_before(values)
    assert scale_unit(values) == before
    numbers, unit = scale_numbers(values)
    assert [f"{number} {unit}" for number in numbers] == before


def test_format_bytes_is_the_texts_it_was_at_every_edge() -> None:
    for power in range(0, 61, 10):
        for edge in (1023, 1023.5, 1024, 9.995 * 1024, 99.95 * 1024, 1000, 10, 100):
            base = int(edge * (1 << power))
            for n in range(base - 3, base + 4):
                assert format_bytes(n) == _format_bytes_before(n), n
                assert format_bytes(-n) == _format_bytes_before(-n), -n
