"""The one formatter: three significant digits, binary units, and no "60 s" in a minute."""

from __future__ import annotations

import pytest

from resmagic.units import format_bytes, format_delta, format_seconds

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
