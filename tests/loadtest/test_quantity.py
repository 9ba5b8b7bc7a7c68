"""Quantities as the API server reads them: one parser for the predictor and the watcher, rounding up to
milli-units like apimachinery's Quantity.MilliValue() (the two used to round differently)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity as client_parse_quantity

from loadtest.autoscaling import watcher
from loadtest.autoscaling.quantity import milli_value, millicores, parse_quantity


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("500m", 500),
        ("1", 1000),
        ("1.5", 1500),
        (".5", 500),
        ("250m", 250),
        ("1n", 1),  # MilliValue rounds up: any positive CPU is at least 1 millicore
        ("123456789n", 124),
        ("100u", 1),
        ("1.0001m", 2),
        ("1Ki", 1024 * 1000),
        ("128Mi", 128 * 2**20 * 1000),
        ("2k", 2_000_000),
        ("2e3", 2_000_000),
        ("5E-3", 5),
        (2, 2000),
        (0.25, 250),
        ("0", 0),
    ],
)
def test_milli_value_is_quantity_milli_value(quantity: str | int | float, expected: int) -> None:
    assert milli_value(quantity) == expected, f"milli_value({quantity!r})"


@pytest.mark.parametrize("quantity", ["", "abc", "1K", "1.2.3", "--1", "1 m", "1mi", True])
def test_a_malformed_quantity_is_an_error_naming_it(quantity: object) -> None:
    with pytest.raises(ValueError, match="is not a Kubernetes quantity"):
        parse_quantity(quantity)  # type: ignore[arg-type]


@given(
    st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "n", "u", "m", "k", "M", "G", "Ki", "Mi", "Gi"]),
)
def test_parse_agrees_with_the_kubernetes_client(number: Decimal, suffix: str) -> None:
    text = f"{number}{suffix}"
    assert parse_quantity(text) == Decimal(client_parse_quantity(text)), text


def test_watcher_and_predictor_read_a_usage_alike() -> None:
    """metrics-server reports nanocores: the watcher's HPA average and the predictor's milli-units agree."""
    hpa = {
        "spec": {
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {"name": "cpu", "target": {"type": "AverageValue", "averageValue": "1"}},
                }
            ]
        },
        "status": {
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "cpu", "current": {"averageValue": "560500001n"}}}
            ]
        },
    }
    expected = (561, 560.500001)
    actual = (watcher.parse_metrics(hpa)[0]["current_average_milli"], millicores("560500001n"))
    assert actual == expected, "(watcher's average millicores, millicores with the fraction)"
