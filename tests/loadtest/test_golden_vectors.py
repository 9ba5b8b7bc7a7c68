"""The Kubernetes HPA controller's own unit tests, re-expressed as data, replayed through the predictor.

tests/loadtest/golden/hpa_controller_vectors.json holds one vector per upstream case (each names the test
function of kubernetes/kubernetes pkg/controller/podautoscaler it restates): the replica calculators for
Resource, Pods, Object and External metrics, and whole syncs of the controller (bounds, several metrics,
from zero). `pytest -s` prints how many pass; the count is what the closing note quotes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from loadtest.autoscaling.controller import Controller
from loadtest.autoscaling.replica_calculator import (
    MetricUnavailable,
    Observed,
    PodSample,
    Proposal,
    per_pod_replicas,
    propose,
    raw_resource_replicas,
    resource_replicas,
    total_replicas,
)
from loadtest.autoscaling.spec import HpaSpec, MetricTarget

VECTORS_FILE = Path(__file__).parent / "golden" / "hpa_controller_vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text())["vectors"]
# Pod states groupPods leaves out entirely, and those it counts as unready for CPU / for every metric.
LEFT_OUT = {"failed", "deleted"}
UNREADY_FOR_CPU = {"unready", "starting", "pending"}
UNREADY_FOR_ANY = {"pending"}


def samples(pods: list[Mapping[str, Any]], *, cpu: bool) -> list[PodSample]:
    """The pods as the replica calculator receives them (groupPods' grouping by state)."""
    unready_states = UNREADY_FOR_CPU if cpu else UNREADY_FOR_ANY
    return [
        PodSample(
            f"pod-{i}", pod.get("request", 0), pod["usage"], pod.get("state", "ready") in unready_states
        )
        for i, pod in enumerate(pods)
        if pod.get("state", "ready") not in LEFT_OUT
    ]


def calculate(vector: Mapping[str, Any]) -> dict[str, Any]:
    """One replica-calculator vector: {"replicas", and "utilization" or "usage"} or {"error"}."""
    kind, current, target = vector["calculator"], vector["current"], vector["target"]
    try:
        if kind == "resource":
            proposal = resource_replicas(current, samples(vector["pods"], cpu=True), target)
            return {"replicas": proposal.replicas, "utilization": proposal.utilization}
        if kind == "pods":
            proposal = raw_resource_replicas(current, samples(vector["pods"], cpu=False), target)
        elif kind == "value":
            proposal = total_replicas(current, vector["total"], target, vector["ready_pods"])
        else:
            proposal = per_pod_replicas(current, vector["total"], target)
        return {"replicas": proposal.replicas, "usage": proposal.raw_average}
    except MetricUnavailable as exc:
        return {"error": str(exc)}


def metric_and_observation(entry: Mapping[str, Any]) -> tuple[MetricTarget | None, Observed]:
    """A controller vector's metric (None: a type the API would reject, whose proposal fails)."""
    kind, target = entry["type"], entry.get("target")
    if kind == "Resource":
        return MetricTarget("cpu", average_utilization=target), Observed(samples(entry["pods"], cpu=True))
    if kind == "Pods":
        metric = MetricTarget("", average_value_milli=target, source="Pods", metric_name="qps")
        return metric, Observed(samples(entry["pods"], cpu=False))
    if kind in ("ObjectValue", "ExternalValue", "ObjectAverageValue", "ExternalAverageValue"):
        source = "Object" if kind.startswith("Object") else "External"
        per_pod = kind.endswith("AverageValue")
        metric = MetricTarget(
            "",
            source=source,
            metric_name="qps",
            average_value_milli=target if per_pod else None,
            value_milli=None if per_pod else target,
        )
        return metric, Observed(total_milli=entry["total"], ready_pods=entry.get("ready_pods", 0))
    return None, Observed()


def sync(vector: Mapping[str, Any]) -> dict[str, Any]:
    """One controller vector: a single sync from an empty recommendation history, behavior unset."""
    parsed = [metric_and_observation(entry) for entry in vector["metrics"]]
    metrics = tuple(m for m, _ in parsed if m is not None)
    spec = HpaSpec(vector["min"], vector["max"], metrics, None, {"model-api": {"cpu": 1000}})
    current = vector["current"]
    proposals: list[Proposal | MetricUnavailable] = [
        MetricUnavailable("invalid metric source type") if m is None else propose(m, current, seen)
        for m, seen in parsed
    ]
    decision = Controller(spec, recommendations=[]).reconcile(0.0, current, proposals)
    actual: dict[str, Any] = {"desired": decision.desired}
    if "scaling_limited" in vector["expected"]:
        actual["scaling_limited"] = decision.scaling_limited
    return actual


def replay(vector: Mapping[str, Any]) -> dict[str, Any]:
    actual = sync(vector) if vector["calculator"] == "controller" else calculate(vector)
    expected = vector["expected"]
    if "error" in expected:
        return {"error": expected["error"] if expected["error"] in actual.get("error", "") else actual}
    return {key: actual.get(key) for key in expected}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["upstream"].rsplit(" ", 1)[-1] for v in VECTORS])
def test_upstream_vector(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    actual = replay(vector)
    assert actual == expected, f"{vector['upstream']}: {vector.get('note', '')}"


def test_golden_vector_count() -> None:
    """Every vector at once, with the count the closing note quotes (printed; run with -s to see it)."""
    results = [(v["upstream"], replay(v) == v["expected"]) for v in VECTORS]
    passed = sum(ok for _, ok in results)
    print(f"\nHPA controller golden vectors: {passed}/{len(results)} passed ({VECTORS_FILE.name})")
    failed = [name for name, ok in results if not ok]
    assert failed == [], f"{len(failed)} upstream vectors differ: {failed}"
