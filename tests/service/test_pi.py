"""pi_digits is exact and truncated: checked against an independent Machin computation and known digits."""

from __future__ import annotations

import sys

import pytest
from model_api.pi import pi_digits

# The first 100 decimals, as published (e.g. OEIS A000796).
PI_100 = (
    "3.1415926535897932384626433832795028841971693993751058209749445923078164062862089986280348253421170679"
)


def machin_pi(ndigits: int) -> str:
    """Pi by Machin's formula (16 atan 1/5 - 4 atan 1/239) in fixed point: not the service's series."""
    guard = 30
    scale = 10 ** (ndigits + guard)

    def atan_inverse(x: int) -> int:
        total, term, n, sign = 0, scale // x, 1, 1
        while term:
            total += sign * (term // n)
            term //= x * x
            n += 2
            sign = -sign
        return total

    scaled = (16 * atan_inverse(5) - 4 * atan_inverse(239)) // 10**guard
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # this process only, restored below
    try:
        digits = str(scaled)
    finally:
        sys.set_int_max_str_digits(previous)
    return digits[0] + ("." + digits[1:] if ndigits else "")


@pytest.mark.parametrize("ndigits", [0, 1, 2, 14, 15, 99, 100])
def test_small_ndigits_match_the_published_digits(ndigits: int) -> None:
    expected = PI_100[: 2 + ndigits] if ndigits else "3"

    assert pi_digits(ndigits) == expected


@pytest.mark.parametrize("ndigits", [761, 762, 763, 767, 768, 1000, 4299, 4300, 4301, 12_000])
def test_matches_machins_formula(ndigits: int) -> None:
    """Includes the Feynman point (six 9s from decimal 762), where rounding instead of truncating shows,
    and sizes around CPython's 4300-digit int-to-str limit."""
    expected = machin_pi(ndigits)

    assert pi_digits(ndigits) == expected


def test_truncates_rather_than_rounds() -> None:
    # Decimals 1..5 are 14159 and decimal 6 is 2; at 4 digits rounding would also give ...1416 vs 1415.
    assert pi_digits(4) == "3.1415"


def test_negative_ndigits_is_refused() -> None:
    with pytest.raises(ValueError, match="ndigits must be >= 0"):
        pi_digits(-1)
