"""Chart layers: every test under tests/chart is marked `chart` (run by `make test-chart`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chart import helpers

CHART_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if CHART_TESTS in Path(item.path).parents:
            item.add_marker(pytest.mark.chart)


@pytest.fixture(params=list(helpers.VALUE_SETS), ids=str)
def value_set(request: pytest.FixtureRequest) -> str:
    """Each values set the chart ships: default, dev, prod, ci/*-values.yaml."""
    return request.param


@pytest.fixture
def objects(value_set: str) -> list[helpers.Manifest]:
    """The rendered, schema-checked release of `value_set`."""
    return helpers.render_set(value_set)
