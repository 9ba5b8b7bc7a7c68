"""CRD schema layer: custom resources are checked against the published CRD schemas vendored in
tests/chart/crds/, strictly (unknown fields refused), on every render — and the vendored files say where
they come from."""

from __future__ import annotations

import json

import pytest

from loadtest.chart import kube_schema
from tests.chart import crd_schemas, helpers

# Every custom resource kind the chart can render.
CHART_CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("argoproj.io/v1alpha1", "Rollout"),
    ("argoproj.io/v1alpha1", "AnalysisTemplate"),
    ("keda.sh/v1alpha1", "ScaledObject"),
}
MINOR = kube_schema.chart_minors(helpers.CHART_DIR)[0]


def test_every_custom_resource_of_the_chart_has_a_vendored_schema() -> None:
    assert set(crd_schemas.crd_schemas()) == CHART_CRDS


@pytest.mark.parametrize("path", crd_schemas.vendored_files(), ids=lambda p: p.name)
def test_vendored_schema_names_its_source(path) -> None:
    source = json.loads(path.read_text())["x-vendored"]
    actual = sorted(k for k in ("repository", "tag", "path", "apiVersion", "kind") if source.get(k))
    assert actual == ["apiVersion", "kind", "path", "repository", "tag"], f"{path.name}: x-vendored"
    assert source["repository"].startswith("https://github.com/"), f"{path.name}: x-vendored.repository"


def test_the_validator_uses_the_vendored_schema() -> None:
    schema = crd_schemas.crd_schemas()[("monitoring.coreos.com/v1", "ServiceMonitor")]
    assert kube_schema.CUSTOM_SCHEMAS[("monitoring.coreos.com/v1", "ServiceMonitor")] is schema


SERVICE_MONITOR = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "ServiceMonitor",
    "metadata": {"name": "m", "namespace": "n"},
    "spec": {"selector": {"matchLabels": {"a": "b"}}, "endpoints": [{"port": "http"}]},
}


@pytest.mark.parametrize(
    ("case", "change", "expected_error"),
    [
        ("valid", {}, None),
        ("unknown spec field", {"spec": {"endpoint": []}}, "endpoint"),
        ("unknown endpoint field", {"spec": {"endpoints": [{"port": "http", "intervl": "5s"}]}}, "intervl"),
        ("wrong type", {"spec": {"endpoints": [{"port": "http", "honorLabels": "yes"}]}}, "honorLabels"),
        ("bad metadata", {"metadata": {"name": "m", "labelz": {}}}, "labelz"),
    ],
)
def test_custom_resources_are_validated_strictly(case: str, change: dict, expected_error: str | None) -> None:
    obj = json.loads(json.dumps(SERVICE_MONITOR))
    for key, value in change.items():
        if key == "spec":
            obj["spec"].update(value)
        else:
            obj[key] = value
    errors = kube_schema.schema_errors(obj, MINOR)
    if expected_error is None:
        assert errors == []
    else:
        assert errors and expected_error in "\n".join(errors), f"{case}: {errors}"


def test_int_or_string_and_preserved_fields_are_honoured() -> None:
    """An HTTPRoute port is an integer; a Rollout's pod template is preserved (any fields)."""
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "r"},
        "spec": {"rules": [{"backendRefs": [{"name": "s", "port": "80"}]}]},
    }
    assert any("port" in e for e in kube_schema.schema_errors(route, MINOR))
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = 80
    assert kube_schema.schema_errors(route, MINOR) == []
