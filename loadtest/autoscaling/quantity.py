"""Kubernetes resource quantities ("500m", "1Gi", "2.5e3") read as the API server reads them.

One parser for the predictor (requests, limits, averageValue targets) and the live watcher (metrics-server
usage in nanocores): `milli_value` is `resource.Quantity.MilliValue()` of apimachinery, which rounds up,
so "1n" of CPU is 1 millicore and "123456789n" is 124. Written here rather than borrowed from the
kubernetes client, whose import costs more than a `--help` should.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

# apimachinery's suffixes (resource/suffix.go): binary SI, decimal SI, and the decimal exponent form.
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>[KMGTPE]i)|(?P<decimal>[numkMGTPE]?)|[eE](?P<exponent>[+-]?[0-9]+))$"
)


def parse_quantity(quantity: str | int | float) -> Decimal:
    """The quantity's exact value in base units (cores, bytes); ValueError naming it when malformed."""
    if isinstance(quantity, bool):
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    if isinstance(quantity, int | float):
        return Decimal(str(quantity))
    match = _QUANTITY.match(str(quantity).strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity (e.g. 500m, 1.5, 2Gi, 1e3)")
    try:
        number = Decimal(match["number"])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimal numbers
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity") from None
    if match["binary"]:
        return number * _BINARY[match["binary"]]
    exponent = int(match["exponent"]) if match["exponent"] is not None else _DECIMAL[match["decimal"] or ""]
    return number.scaleb(exponent)


def milli_value(quantity: str | int | float) -> int:
    """Quantity.MilliValue(): the value in milli-units (millicores; bytes x 1000), rounded up."""
    return int((parse_quantity(quantity) * 1000).to_integral_value(rounding=ROUND_CEILING))


def millicores(quantity: str | int | float) -> float:
    """A CPU quantity in millicores with its fraction kept, for display ("123456789n" -> 123.456789)."""
    return float(parse_quantity(quantity) * 1000)
