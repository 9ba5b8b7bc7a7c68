"""Digits of pi, exact and truncated: the CPU-bound workload behind GET /api/v0/pi.

Chudnovsky series summed by binary splitting over Python integers, so the cost grows with the number of
digits (roughly n log^3 n) and stays in pure Python: a request for many digits keeps one core busy,
which is what the autoscaling tests need.
"""

from __future__ import annotations

import functools
from math import isqrt

_C = 640320
_C3_OVER_24 = _C**3 // 24
_DIGITS_PER_TERM = 14.18  # each Chudnovsky term adds log10(C^3 / 1728) ~= 14.18 digits
_GUARD_DIGITS = 20
_ERROR_UNITS = 100  # generous bound on the rounding error, in units of the last guard digit
_DIRECT_STR_DIGITS = 2000  # below CPython's 4300-digit str(int) limit
_LOG10_2 = 0.30102999566398120


def pi_digits(ndigits: int) -> str:
    """Pi with exactly `ndigits` digits after the point, truncated (not rounded): "3" for 0."""
    if ndigits < 0:
        raise ValueError(f"ndigits must be >= 0, got {ndigits}")
    guard = _GUARD_DIGITS
    while True:
        digits = _decimal_string(_scaled_pi(ndigits + guard))
        tail = int(digits[1 + ndigits :])
        # The integer result may be a few units off in its last guard digits; only when the guard digits
        # sit that close to a carry (…999 or …000) could truncation pick the wrong digit. Then retry wider.
        if _ERROR_UNITS <= tail <= 10**guard - _ERROR_UNITS:
            break
        guard *= 2
    return digits[0] + ("." + digits[1 : 1 + ndigits] if ndigits else "")


def _scaled_pi(digits: int) -> int:
    """floor(pi * 10**digits), give or take a couple of units."""
    terms = int(digits / _DIGITS_PER_TERM) + 2
    _, q, t = _split(0, terms)
    one = 10**digits
    sqrt_10005 = isqrt(10005 * one * one)
    return q * 426880 * sqrt_10005 // t


def _split(a: int, b: int) -> tuple[int, int, int]:
    """Binary splitting of Chudnovsky terms a..b-1: (P, Q, T) products and the partial sum numerator."""
    if b - a == 1:
        if a == 0:
            p = q = 1
        else:
            p = (6 * a - 5) * (2 * a - 1) * (6 * a - 1)
            q = a * a * a * _C3_OVER_24
        t = p * (13591409 + 545140134 * a)
        return p, q, -t if a & 1 else t
    m = (a + b) // 2
    p_am, q_am, t_am = _split(a, m)
    p_mb, q_mb, t_mb = _split(m, b)
    return p_am * p_mb, q_am * q_mb, q_mb * t_am + p_am * t_mb


def _decimal_string(value: int) -> str:
    """str(value) for huge ints, by divide and conquer on powers of ten.

    str(int) refuses more than 4300 digits by default (CPython's process-wide DoS guard, left untouched
    here), and before Python 3.12 converts in quadratic time; splitting keeps each conversion small.
    """
    width = int(value.bit_length() * _LOG10_2) + 2  # at least the number of digits of value
    return _to_string(value, width).lstrip("0") or "0"


def _to_string(value: int, width: int) -> str:
    if width <= _DIRECT_STR_DIGITS:
        return str(value).zfill(width)
    low_width = width // 2
    high, low = divmod(value, _power_of_ten(low_width))
    return _to_string(high, width - low_width) + _to_string(low, low_width)


@functools.lru_cache(maxsize=64)  # bounded: request sizes vary
def _power_of_ten(exponent: int) -> int:
    return 10**exponent
