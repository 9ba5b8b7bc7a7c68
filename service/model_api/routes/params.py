"""Query parameter parsing shared by the seed routes: missing or unparsable → 400, out of range → 422."""

from __future__ import annotations

import math
from collections.abc import Iterable

from model_api.errors import BadRequest, Unprocessable
from model_api.tensors import FLOAT32_MAX


def check_known(query: dict[str, str], known: Iterable[str]) -> None:
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise BadRequest(f"unknown query parameter {unknown[0]!r}; expected {', '.join(known)}")


def required(query: dict[str, str], name: str, meaning: str) -> str:
    value = query.get(name)
    if value is None or not value.strip():
        raise BadRequest(f"missing query parameter {name!r} ({meaning})")
    return value


def finite_float(query: dict[str, str], name: str, meaning: str) -> float:
    text = required(query, name, meaning)
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise Unprocessable(f"query parameter {name!r} must be finite, got {text[:40]!r}")
    if abs(value) > FLOAT32_MAX:  # the model computes in float32, where this would become inf
        raise Unprocessable(f"query parameter {name!r} is beyond the float32 range (±{FLOAT32_MAX:.7g})")
    return value


def bounded_int(
    query: dict[str, str], name: str, meaning: str, *, low: int, high: int, limit_name: str
) -> int:
    text = required(query, name, meaning)
    if len(text) > 20:  # int() of a huge digit string is itself slow work; no valid value is this long
        raise Unprocessable(f"query parameter {name!r} must be at most {high} ({limit_name})")
    try:
        value = int(text)
    except ValueError:
        raise BadRequest(f"query parameter {name!r} must be an integer, got {text[:40]!r}") from None
    if value < low:
        raise Unprocessable(f"query parameter {name!r} must be >= {low}, got {value}")
    if value > high:
        raise Unprocessable(f"query parameter {name!r}={value} exceeds {limit_name}={high}")
    return value
