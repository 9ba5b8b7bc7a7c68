"""Autoscaling layer: `autoscaling.engine` renders exactly one autoscaler per workload (an HPA, or a KEDA
ScaledObject on explicit opt-in), the CPU, requests-per-second and in-flight targets map to the metrics and
triggers the README documents, bad combinations are refused naming the key, and every metric name the
chart or one of its queries uses is exported by the running service — except, by design, the request count
in front of the pods that wakes a KEDA workload scaled to zero (COUNTED_IN_FRONT)."""

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
            {"targetRequestsPerSecond": 5, "minReplicas": 0, "keda": {"activation": {"query": "sum(up)"}}},
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


ISTIO_ARRIVING = 'sum(rate(istio_requests_total{destination_service_name="model-api"}[1m]))'
NGINX_INGRESS = {
    "enabled": True,
    "className": "nginx",
    "hosts": [{"host": "api.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
}


def to_zero(**keda: Any) -> dict[str, Any]:
    return autoscaling(engine="keda", minReplicas=0, targetRequestsPerSecond=5, keda=keda)


def arriving_trigger(values: dict) -> Manifest | None:
    triggers = scaled_object(values)["spec"]["triggers"]
    return next((t for t in triggers if t.get("name") == "requests-arriving"), None)


def test_keda_scale_to_zero_wakes_on_requests_counted_in_front_of_the_pods() -> None:
    values = to_zero(activation={"query": ISTIO_ARRIVING, "threshold": 0.5})
    expected = (
        (0, 10),
        {
            "type": "prometheus",
            "name": "requests-arriving",
            "metricType": "AverageValue",
            "metadata": {
                "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                "query": ISTIO_ARRIVING,
                "threshold": "5",
                "activationThreshold": "0.5",
            },
        },
    )
    spec = scaled_object(values)["spec"]
    actual = ((spec["minReplicaCount"], spec["maxReplicaCount"]), arriving_trigger(values))
    assert actual == expected, "ScaledObject/model-api: (min, max), spec.triggers[requests-arriving]"


def test_keda_activation_query_is_derived_from_the_charts_nginx_ingress() -> None:
    values = {**to_zero(rateWindow="2m"), "ingress": NGINX_INGRESS}
    expected = ('sum(rate(nginx_ingress_controller_requests{ingress="model-api"}[2m]))', "0")
    trigger = arriving_trigger(values) or {}
    actual = (trigger["metadata"]["query"], trigger["metadata"]["activationThreshold"])
    assert actual == expected, "ScaledObject/model-api: spec.triggers[requests-arriving] (query, activation)"


@pytest.mark.parametrize(
    ("case", "values"),
    [
        (
            "minReplicas 1, query set",
            autoscaling(
                engine="keda",
                minReplicas=1,
                targetRequestsPerSecond=5,
                keda={"activation": {"query": ISTIO_ARRIVING}},
            ),
        ),
        (
            "minReplicas 2, nginx Ingress",
            {**autoscaling(engine="keda", targetRequestsPerSecond=5), "ingress": NGINX_INGRESS},
        ),
    ],
)
def test_no_activation_trigger_where_the_workload_never_reaches_zero(case: str, values: dict) -> None:
    assert arriving_trigger(values) is None, f"{case}: ScaledObject/model-api has a requests-arriving trigger"


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
        "minReplicas 0 (keda) without an activation query",
        autoscaling(engine="keda", minReplicas=0, targetRequestsPerSecond=5),
        "autoscaling.minReplicas 0 with engine keda needs autoscaling.keda.activation.query",
    ),
    (
        "minReplicas 0 (keda), Ingress of another class: nothing to derive the query from",
        {
            **autoscaling(engine="keda", minReplicas=0, targetRequestsPerSecond=5),
            "ingress": {**NGINX_INGRESS, "className": "traefik"},
        },
        "autoscaling.keda.activation.query",
    ),
    (
        "minReplicas 0 (keda) on in-flight only",
        autoscaling(
            engine="keda", minReplicas=0, targetInFlight=2, keda={"activation": {"query": "sum(up)"}}
        ),
        "autoscaling.minReplicas 0 with engine keda needs autoscaling.targetRequestsPerSecond",
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


# The one trigger whose series is not the service's, by design: requests counted in front of the pods (here
# the chart's own ingress-nginx Ingress), because at zero replicas no pod exists to count them.
COUNTED_IN_FRONT = {"requests-arriving": {"nginx_ingress_controller_requests"}}


def test_keda_queries_use_the_services_series() -> None:
    series = service_metrics.scraped_series()
    values = {**autoscaling(engine="keda", minReplicas=0, **REQUEST_TARGETS), "ingress": NGINX_INGRESS}
    triggers = [t for t in scaled_object(values)["spec"]["triggers"] if t["type"] == "prometheus"]
    names = {t["name"]: service_metrics.promql_metric_names(t["metadata"]["query"]) for t in triggers}
    external = {name: names.pop(name) for name in COUNTED_IN_FRONT}
    unknown = {name: found - series for name, found in names.items()}
    expected = ({}, COUNTED_IN_FRONT, ["requests-per-second", "requests-in-flight"])
    actual = ({name: found for name, found in unknown.items() if found}, external, list(names))
    assert actual == expected, (
        "ScaledObject/model-api: spec.triggers (names not in /metrics, the documented exception, "
        "triggers on the service's series)"
    )


def test_metric_name_extraction_can_fail() -> None:
    query = 'sum(rate(model_api_requests_totl{route!~"/healthz"}[1m]))'
    assert service_metrics.promql_metric_names(query) - service_metrics.scraped_series() == {
        "model_api_requests_totl"
    }
