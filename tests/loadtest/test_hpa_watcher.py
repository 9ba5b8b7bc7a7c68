"""The live HPA watcher's parsing, against API objects recorded by hand under tests/loadtest/recorded/.

The last tests run `HpaWatcher.sample()` through the real kubernetes client against a loopback HTTP server
that answers with the recorded objects, so the client's (de)serialization path is exercised too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from kubernetes import client

from loadtest.autoscaling import watcher as hpa_watcher
from loadtest.autoscaling.watcher import (
    COLUMNS,
    METRICS_SERVER_HINT,
    HpaWatcher,
    Watched,
    events_row,
    metrics_api_error,
    new_events,
    parse_hpa,
    parse_pod_metrics,
    parse_pods,
    parse_workload,
    problems,
)
from loadtest.chart import release as chart_release
from tests.loadtest.stub_http import serving

RECORDED = Path(__file__).parent / "recorded"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / name).read_text())


def test_hpa_with_metrics_status() -> None:
    expected = {
        "hpa_found": True,
        "hpa_current_replicas": 3,
        "hpa_desired_replicas": 5,
        "hpa_min_replicas": 3,
        "hpa_max_replicas": 10,
        "hpa_cpu_utilization": 112,
        "hpa_cpu_target": 70,
        "hpa_cpu_average_millicores": 560,
        "hpa_metrics": "cpu: 112%/70%; memory: 104857600/300Mi",
        "hpa_unknown_metrics": 0,
        "hpa_able_to_scale": "True",
        "hpa_able_to_scale_reason": "SucceededRescale",
        "hpa_scaling_active": "True",
        "hpa_scaling_active_reason": "ValidMetricFound",
        "hpa_scaling_active_message": "the HPA was able to successfully calculate a replica count from cpu "
        "resource utilization (percentage of request)",
        "hpa_scaling_limited": "False",
        "hpa_scaling_limited_reason": "DesiredWithinRange",
    }
    actual = parse_hpa(recorded("hpa_scaling.json"))
    assert actual == expected, "parse_hpa(hpa_scaling.json)"


def test_hpa_with_unknown_metrics() -> None:
    expected = {
        "hpa_cpu_utilization": None,
        "hpa_metrics": "cpu: <unknown>/70%",
        "hpa_unknown_metrics": 1,
        "hpa_scaling_active": "False",
        "hpa_scaling_active_reason": "FailedGetResourceMetric",
        "hpa_scaling_limited": None,
    }
    row = parse_hpa(recorded("hpa_unknown_metrics.json"))
    actual = {key: row[key] for key in expected}
    assert actual == expected, "parse_hpa(hpa_unknown_metrics.json): metrics and conditions"


def test_unknown_metrics_problem_quotes_the_condition() -> None:
    hpa = recorded("hpa_unknown_metrics.json")
    message = next(c["message"] for c in hpa["status"]["conditions"] if c["type"] == "ScalingActive")
    expected = [
        f'the HPA cannot compute replicas: ScalingActive False, reason FailedGetResourceMetric: "{message}"'
    ]
    actual = problems(parse_hpa(hpa))
    assert actual == expected, "problems() of an HPA whose ScalingActive is False"


def test_healthy_hpa_has_no_problems() -> None:
    row = {**hpa_watcher.empty_row(), **parse_hpa(recorded("hpa_scaling.json"))}
    assert problems(row) == [], "problems() of a healthy HPA row"


def test_new_events_are_reported_once_oldest_first() -> None:
    events = recorded("hpa_events.json")
    seen: set = set()
    expected_first = ["FailedGetResourceMetric", "FailedComputeMetricsReplicas", "SuccessfulRescale"]
    first = [e["reason"] for e in new_events(events, seen)]
    second = new_events(events, seen)
    assert (first, second) == (expected_first, []), "reasons of new events on the first and second sample"


def test_a_repeated_event_counts_as_new() -> None:
    events = recorded("hpa_events.json")
    seen: set = set()
    new_events(events, seen)
    events["items"][0].update(count=5, lastTimestamp="2026-11-22T05:41:17Z")
    expected = ["FailedGetResourceMetric"]
    actual = [e["reason"] for e in new_events(events, seen)]
    assert actual == expected, "reasons of new events after one event's count went from 4 to 5"


def test_events_row_text() -> None:
    rescale = recorded("hpa_events.json")["items"][2]
    expected = {
        "hpa_events": "Normal SuccessfulRescale: New size: 5; reason: cpu resource utilization "
        "(percentage of request) above target",
        "hpa_new_events": 1,
    }
    assert events_row([rescale]) == expected, "events_row() of the SuccessfulRescale event"


def test_pod_phases() -> None:
    expected = {
        "pods_running": 3,
        "pods_pending": 1,
        "pods_succeeded": 0,
        "pods_failed": 0,
        "pods_unknown": 0,
        "pods_terminating": 1,
        "pods_ready": 1,
    }
    assert parse_pods(recorded("pods.json")) == expected, "parse_pods(pods.json)"


def test_workload_replicas() -> None:
    expected = {"workload_replicas": 5, "workload_ready_replicas": 3}
    assert parse_workload(recorded("deployment_status.json")) == expected, (
        "parse_workload(deployment_status.json)"
    )


def test_pod_cpu_from_metrics_api() -> None:
    # nanocores to millicores: 561234567n = 561.234567m; 548765433n = 548.765433m; plus 3m
    expected = {
        "pods_cpu_millicores": 1113.0,
        "pods_cpu_per_pod": "model-api-7d9c8b6f5d-2xkqp=561.2m;model-api-7d9c8b6f5d-9wz4m=548.8m;"
        "model-api-7d9c8b6f5d-kq7rt=3.0m",
        "pod_metrics_error": None,
    }
    assert parse_pod_metrics(recorded("pod_metrics.json")) == expected, "parse_pod_metrics(pod_metrics.json)"


@pytest.mark.parametrize(
    ("case", "status", "body", "hint_expected"),
    [
        ("API not registered", 404, json.dumps(recorded("metrics_api_404.json")), True),
        ("metrics-server not ready", 503, json.dumps(recorded("metrics_api_503.json")), True),
        ("a body that is not JSON", 503, "service unavailable", True),
        ("forbidden is another problem", 403, '{"message": "pods.metrics.k8s.io is forbidden"}', False),
    ],
)
def test_metrics_api_errors(case: str, status: int, body: str, hint_expected: bool) -> None:
    message = metrics_api_error(status, body)
    actual = (METRICS_SERVER_HINT in message, str(status) in message)
    assert actual == (hint_expected, True), f"{case}: (hint present, status quoted) in {message!r}"


def test_missing_hpa_and_metrics_server_are_both_reported() -> None:
    row = {
        **hpa_watcher.empty_row(),
        "hpa_error": "HPA default/model-api not found",
        "pod_metrics_error": metrics_api_error(404, None),
    }
    expected = ["HPA default/model-api not found", metrics_api_error(404, None)]
    assert problems(row) == expected, "problems() of a row without HPA and without metrics-server"


HPA_ON = {"autoscaling": {"enabled": True}}


@pytest.mark.parametrize(
    ("release_name", "overrides", "expected_hpa"),
    [
        ("model-api", {}, "model-api"),
        ("prod", {}, "prod-model-api"),
        ("blue-model-api-v2", {}, "blue-model-api-v2"),
        ("x" * 60, {}, ("x" * 60 + "-model-api")[:63]),
        ("model-api", {"fullnameOverride": "scorer"}, "scorer"),
        ("prod", {"nameOverride": "classifier"}, "prod-classifier"),
    ],
)
def test_watched_names_are_the_rendered_ones(
    release_name: str, overrides: dict[str, Any], expected_hpa: str
) -> None:
    """The HPA's name as the chart renders it, overrides included (rebuilding it from the release name
    missed fullnameOverride and nameOverride)."""
    objects = chart_release.render({**HPA_ON, **overrides}, release=release_name)
    actual = Watched.from_release(objects).hpa_name
    assert actual == expected_hpa, f"release {release_name!r} with {overrides}: the watched HPA"


@pytest.mark.parametrize("overrides", [{}, {"fullnameOverride": "scorer"}, {"nameOverride": "classifier"}])
def test_watched_pod_selector_selects_the_rendered_pods_only(overrides: dict[str, Any]) -> None:
    objects = chart_release.render({**HPA_ON, **overrides})
    selector = dict(pair.split("=", 1) for pair in Watched.from_release(objects).pod_selector.split(","))
    pod_labels = chart_release.workload(objects)["spec"]["template"]["metadata"]["labels"]
    expected = (True, {"app.kubernetes.io/instance"})
    actual = (
        selector.items() <= pod_labels.items(),
        {key for key in selector if key == "app.kubernetes.io/instance"},
    )
    assert actual == expected, f"{overrides}: selector {selector} against pod labels {pod_labels}"


# --- HpaWatcher.sample() through the real client against recorded answers -----------------------------------

NAMESPACE = "default"
ROUTES = {
    f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/model-api": "hpa_scaling.json",
    f"/api/v1/namespaces/{NAMESPACE}/events": "hpa_events.json",
    f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/model-api/status": "deployment_status.json",
    f"/api/v1/namespaces/{NAMESPACE}/pods": "pods.json",
    f"/apis/metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/pods": "metrics_api_404.json",
}


class RecordedApi(BaseHTTPRequestHandler):
    """Answers GETs with the recorded object for the path; Status objects carry their own code."""

    routes: dict[str, str | dict[str, Any]] = ROUTES  # a file under recorded/, or the object itself
    queries: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.queries.append(url.query)
        answer = self.routes.get(url.path)
        body = recorded(answer) if isinstance(answer, str) else answer
        if not body:
            body = {"kind": "Status", "code": 404, "message": f"no route {self.path}"}
        payload = json.dumps(body).encode()
        self.send_response(body.get("code", 200) if body.get("kind") == "Status" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def api_server() -> Iterator[ThreadingHTTPServer]:
    with serving(RecordedApi) as server:
        yield server


def watcher_for(server: ThreadingHTTPServer) -> HpaWatcher:
    watched = Watched.from_release(chart_release.render(HPA_ON))
    return HpaWatcher(api_client_for(server), NAMESPACE, "model-api", watched)


def api_client_for(server: ThreadingHTTPServer) -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    return client.ApiClient(configuration)


def test_sample_row_from_the_api(api_server: ThreadingHTTPServer) -> None:
    expected = {
        **parse_hpa(recorded("hpa_scaling.json")),
        **events_row(new_events(recorded("hpa_events.json"), set())),
        **parse_workload(recorded("deployment_status.json")),
        **parse_pods(recorded("pods.json")),
        "pods_cpu_millicores": None,
        "pods_cpu_per_pod": None,
        "pod_metrics_error": metrics_api_error(404, recorded("metrics_api_404.json")),
        "hpa_error": None,
    }
    actual = watcher_for(api_server).sample()
    assert actual == expected, "HpaWatcher.sample() against the recorded API"
    assert list(actual) == list(COLUMNS), "sample() columns and their order"


def test_sample_reports_a_missing_hpa(
    api_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = {path: name for path, name in ROUTES.items() if "horizontalpodautoscalers" not in path}
    monkeypatch.setattr(RecordedApi, "routes", routes)
    row = watcher_for(api_server).sample()
    expected = (False, True)
    actual = (row["hpa_found"], "not found for release 'model-api'" in (row["hpa_error"] or ""))
    assert actual == expected, f"(hpa_found, hpa_error names the release) in {row['hpa_error']!r}"


def test_discover_reads_the_installed_names_from_the_api(
    api_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --watch-hpa --release R` knows only R: the HPA is found by Helm's instance label and the pods by
    the selector of the workload it scales, so a fullnameOverride install is watched by its real names."""
    objects = chart_release.render({**HPA_ON, "fullnameOverride": "scorer"})
    hpa = chart_release.get(objects, "HorizontalPodAutoscaler")
    routes = {
        f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers": {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscalerList",
            "items": [hpa],
        },
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/scorer": chart_release.workload(objects),
    }
    monkeypatch.setattr(RecordedApi, "routes", routes)
    monkeypatch.setattr(RecordedApi, "queries", [])
    watched = hpa_watcher.discover(api_client_for(api_server), NAMESPACE, "model-api")
    expected = (Watched.from_release(objects), {"labelSelector": ["app.kubernetes.io/instance=model-api"]})
    actual = (watched, parse_qs(RecordedApi.queries[0]))
    assert actual == expected, "(names discovered, the HPA list's query)"


def test_discover_without_an_hpa_says_so_in_the_row(
    api_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = {
        f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers": {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscalerList",
            "items": [],
        },
        **{path: name for path, name in ROUTES.items() if "horizontalpodautoscalers" not in path},
    }
    monkeypatch.setattr(RecordedApi, "routes", routes)
    api_client = api_client_for(api_server)
    watched = hpa_watcher.discover(api_client, NAMESPACE, "blue")
    row = HpaWatcher(api_client, NAMESPACE, "blue", watched).sample()
    expected = (None, False, True)
    actual = (
        watched.hpa_name,
        row["hpa_found"],
        "no HPA labelled app.kubernetes.io/instance=blue" in row["hpa_error"],
    )
    assert actual == expected, f"(hpa name, hpa_found, hpa_error names the label) in {row['hpa_error']!r}"
