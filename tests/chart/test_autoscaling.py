"""Autoscaling layer: `autoscaling.engine` renders exactly one autoscaler per workload (an HPA, or a KEDA
ScaledObject on explicit opt-in), the CPU, requests-per-second and in-flight targets map to the metrics and
triggers the README documents, bad combinations are refused naming the key, and every metric name the
chart or one of its queries uses is exported by the running service."""

from __future__ import annotations

from typing import Any

import helm_python
import pytest

from loadtest.chart import kube_schema
from tests.chart import helpers, service_metrics
from tests.chart.helpers import Manifest

AUTOSCALER_KINDS = ("HorizontalPodAutoscaler", "ScaledObject")
KEDA: dict[str, Any] = {"autoscaling": {"enabled": True, "engine": "keda"}}
HPA: dict[str, Any] = {"autoscaling": {"enabled": True}}
REQUEST_TARGETS = {"targetRequestsPerSecond": 25, "targetInFlight": 4}


def autoscaling(**values: Any) -> dict[str, Any]:
    return {"autoscaling": {"enabled": True, **values}}


def autoscalers(objects: list[Manifest]) -> list[str]:
    return sorted(helpers.label(o) for o in objects if o["kind"] in AUTOSCALER_KINDS)


@pytest.mark.parametrize(
    ("case", "values", "expected"),
    [
        ("off", {}, []),
        ("hpa by default", HPA, ["HorizontalPodAutoscaler/model-api"]),
        ("keda on opt-in", KEDA, ["ScaledObject/model-api"]),
        ("keda, request targets", autoscaling(engine="keda", **REQUEST_TARGETS), ["ScaledObject/model-api"]),
    ],
)
def test_exactly_one_autoscaler_per_workload(case: str, values: dict, expected: list[str]) -> None:
    assert autoscalers(helpers.render(values)) == expected, case


def test_shipped_values_never_render_a_scaled_object(value_set: str) -> None:
    """KEDA's CRD is the user's: no shipped environment file renders a ScaledObject (issue 9 item 5)."""
    assert helpers.find(helpers.render_set(value_set), "ScaledObject") == []


def hpa_metrics(values: dict) -> list[Manifest]:
    return helpers.get(helpers.render(values), "HorizontalPodAutoscaler")["spec"]["metrics"]


def pods_metric(name: str, value: str) -> Manifest:
    return {
        "type": "Pods",
        "pods": {"metric": {"name": name}, "target": {"type": "AverageValue", "averageValue": value}},
    }


CPU_70 = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
}


@pytest.mark.parametrize(
    ("case", "values", "expected"),
    [
        ("cpu", {}, [CPU_70]),
        (
            "cpu + rps",
            {"targetRequestsPerSecond": 25},
            [CPU_70, pods_metric("model_api_requests_per_second", "25")],
        ),
        (
            "rps + in-flight, no cpu",
            {"targetCPUUtilizationPercentage": None, "targetRequestsPerSecond": 12.5, "targetInFlight": 4},
            [
                pods_metric("model_api_requests_per_second", "12.5"),
                pods_metric("model_api_requests_in_flight", "4"),
            ],
        ),
    ],
)
def test_hpa_metrics_per_target(case: str, values: dict, expected: list[Manifest]) -> None:
    assert hpa_metrics(autoscaling(**values)) == expected, case


def scaled_object(values: dict) -> Manifest:
    return helpers.get(helpers.render(values), "ScaledObject")


def test_keda_triggers_query_the_services_own_series() -> None:
    spec = scaled_object(autoscaling(engine="keda", **REQUEST_TARGETS))["spec"]
    served = 'route!~"/healthz|/readyz|/metrics"'
    expected = [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}},
        {
            "type": "prometheus",
            "name": "requests-per-second",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                "query": "sum(rate(model_api_requests_total"
                f'{{namespace="{helpers.NAMESPACE}",service="model-api",{served}}}[1m]))',
                "threshold": "25",
            },
        },
        {
            "type": "prometheus",
            "name": "requests-in-flight",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                "query": "sum(model_api_requests_in_flight"
                f'{{namespace="{helpers.NAMESPACE}",service="model-api"}})',
                "threshold": "4",
            },
        },
    ]
    assert spec["triggers"] == expected


def test_keda_server_address_and_window_are_values() -> None:
    keda = {"serverAddress": "http://prom.example:9090", "rateWindow": "2m"}
    spec = scaled_object(autoscaling(engine="keda", targetRequestsPerSecond=5, keda=keda))["spec"]
    trigger = next(t for t in spec["triggers"] if t["type"] == "prometheus")
    actual = (trigger["metadata"]["serverAddress"], trigger["metadata"]["query"].endswith("[2m]))"))
    assert actual == ("http://prom.example:9090", True)


def test_keda_behavior_is_the_hpa_behavior() -> None:
    values = autoscaling(targetRequestsPerSecond=5)
    hpa_behavior = helpers.get(helpers.render(values), "HorizontalPodAutoscaler")["spec"]["behavior"]
    keda = scaled_object(autoscaling(engine="keda", targetRequestsPerSecond=5))["spec"]
    assert keda["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] == hpa_behavior


@pytest.mark.parametrize(
    ("case", "values", "expected"),
    [
        ("cpu only: no fallback (KEDA refuses it)", {}, None),
        (
            "request trigger: fallback at minReplicas",
            {"targetRequestsPerSecond": 5},
            {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"},
        ),
        (
            "scale to zero: fallback at one replica",
            {"targetRequestsPerSecond": 5, "minReplicas": 0},
            {"failureThreshold": 3, "replicas": 1, "behavior": "currentReplicasIfHigher"},
        ),
        (
            "explicit",
            {"targetInFlight": 2, "keda": {"fallback": {"replicas": 6, "behavior": "static"}}},
            {"failureThreshold": 3, "replicas": 6, "behavior": "static"},
        ),
    ],
)
def test_keda_fallback(case: str, values: dict, expected: Manifest | None) -> None:
    assert scaled_object(autoscaling(engine="keda", **values))["spec"].get("fallback") == expected, case


def test_keda_scale_to_zero_with_a_request_trigger() -> None:
    spec = scaled_object(autoscaling(engine="keda", minReplicas=0, targetRequestsPerSecond=5))["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 10)


def test_workload_leaves_replicas_to_keda() -> None:
    objects = helpers.render(KEDA)
    assert "replicas" not in helpers.workload(objects)["spec"]


NEWEST_MINORS = [m for m in kube_schema.chart_minors(helpers.CHART_DIR) if m >= "1.35"]


@pytest.mark.parametrize("engine", ["hpa", "keda"])
def test_tolerance_per_direction(engine: str) -> None:
    """`behavior.<direction>.tolerance` is beta from Kubernetes 1.35: validated against those schemas."""
    values = autoscaling(engine=engine, tolerance={"scaleUp": 0.05, "scaleDown": 0.2})
    objects = [o for _, o in helpers.render_uncached(values, minors=NEWEST_MINORS)]
    autoscaler = next(o for o in objects if o["kind"] in AUTOSCALER_KINDS)
    spec = autoscaler["spec"]
    behavior = (
        spec["behavior"] if engine == "hpa" else spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    )
    actual = (behavior["scaleUp"]["tolerance"], behavior["scaleDown"]["tolerance"])
    assert actual == ("0.05", "0.2"), f"{helpers.label(autoscaler)}: behavior.*.tolerance"


def test_no_tolerance_by_default() -> None:
    behavior = helpers.get(helpers.render(HPA), "HorizontalPodAutoscaler")["spec"]["behavior"]
    assert [d for d in ("scaleUp", "scaleDown") if "tolerance" in behavior[d]] == []


REFUSED: list[tuple[str, dict[str, Any], str]] = [
    (
        "no metric",
        autoscaling(targetCPUUtilizationPercentage=None),
        "autoscaling.enabled needs a metric",
    ),
    (
        "two engines",
        autoscaling(engine="keda", metrics=[{"type": "Pods", "pods": {}}]),
        "autoscaling.metrics",
    ),
    (
        "minReplicas 0 with CPU only (keda)",
        autoscaling(engine="keda", minReplicas=0),
        "autoscaling.minReplicas 0",
    ),
    (
        "minReplicas 0 with an HPA",
        autoscaling(minReplicas=0, targetRequestsPerSecond=5),
        "autoscaling.minReplicas 0 needs autoscaling.engine keda",
    ),
    (
        "CPU target without CPU request (hpa)",
        {**autoscaling(), "resources": {"requests": {"cpu": None}}},
        "autoscaling.targetCPUUtilizationPercentage needs resources.requests.cpu",
    ),
    (
        "CPU target without CPU request (keda)",
        {
            **autoscaling(engine="keda"),
            "resources": {"requests": {"cpu": None}},
        },
        "autoscaling.targetCPUUtilizationPercentage needs resources.requests.cpu",
    ),
]


@pytest.mark.parametrize(("case", "values", "expected"), REFUSED, ids=[c for c, _, _ in REFUSED])
def test_bad_autoscaling_is_refused_naming_the_key(case: str, values: dict, expected: str) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        helpers.render(values)
    assert expected in str(refused.value), f"{case}: {refused.value}"


def test_an_unknown_engine_is_refused_by_the_schema() -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        helpers.render(autoscaling(engine="hpa+keda"))
    assert "/autoscaling/engine" in str(refused.value)


def test_adapter_rules_expose_the_hpa_pods_metrics() -> None:
    """The HPA's Pods metric names are what the README's Prometheus Adapter rules make of the service's
    own series."""
    exposed = service_metrics.adapter_metric_names(service_metrics.scraped_series())
    metrics = hpa_metrics(autoscaling(**REQUEST_TARGETS))
    wanted = {m["pods"]["metric"]["name"] for m in metrics if m["type"] == "Pods"}
    assert wanted - set(exposed) == set(), (
        f"HorizontalPodAutoscaler/model-api: spec.metrics[*].pods.metric.name "
        f"{sorted(wanted - set(exposed))} is no metric the documented adapter rules expose "
        f"({sorted(exposed)})"
    )


def test_adapter_rule_queries_use_the_services_series() -> None:
    series = service_metrics.scraped_series()
    for rule in service_metrics.adapter_rules():
        names = service_metrics.promql_metric_names(rule["seriesQuery"])
        assert names and names <= series, (
            f"README adapter rule seriesQuery {rule['seriesQuery']!r}: {names - series}"
        )


def test_keda_queries_use_the_services_series() -> None:
    series = service_metrics.scraped_series()
    spec = scaled_object(autoscaling(engine="keda", **REQUEST_TARGETS))["spec"]
    queries = [t["metadata"]["query"] for t in spec["triggers"] if t["type"] == "prometheus"]
    unknown = {q: service_metrics.promql_metric_names(q) - series for q in queries}
    assert {q: names for q, names in unknown.items() if names} == {}, "ScaledObject/model-api: spec.triggers"
    assert len(queries) == 2


def test_metric_name_extraction_can_fail() -> None:
    query = 'sum(rate(model_api_requests_totl{route!~"/healthz"}[1m]))'
    assert service_metrics.promql_metric_names(query) - service_metrics.scraped_series() == {
        "model_api_requests_totl"
    }
