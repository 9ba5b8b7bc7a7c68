"""The canary rehearsal's pure parts: router → nginx config, ServiceMonitor → scrape config, the Wilson
interval, Argo's analysis rules (NaN, empty results, limits), and the service's rehearsal faults."""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from model_api import faults
from model_api.errors import ApiError
from model_api.settings import Settings, SettingsError

from loadtest.canary import analysis, nginx, prometheus, share, topology
from loadtest.chart import release
from tests.loadtest.canary_release import SLOT_LABEL, VERSION_LABEL, canary_release, replicas_release

# ---- topology and nginx ----


def test_httproute_weights_and_header_rule_are_read_from_the_route() -> None:
    topo = topology.read_topology(canary_release(weight=20))
    expected = topology.Router(
        "gatewayAPI",
        "HTTPRoute/model-api",
        (("model-api-blue", 80), ("model-api-green", 20)),
        (topology.HeaderRule("X-Canary", "always", "model-api-green"),),
    )
    assert topo.router == expected
    assert (topo.candidate.name, topo.stable.name, topo.slot_label) == ("green", "blue", SLOT_LABEL)
    assert topo.expected_share() == {"blue": 0.8, "green": 0.2}
    assert {s.name: s.version for s in topo.slots} == {"blue": "1.0.0", "green": "1.1.0"}


def test_ingress_nginx_canary_annotations_become_always_never_rules_and_weight() -> None:
    topo = topology.read_topology(canary_release(weight=30, router="ingressNginx"))
    expected = topology.Router(
        "ingressNginx",
        "Ingress/model-api-canary",
        (("model-api", 70), ("model-api-green", 30)),
        (
            topology.HeaderRule("X-Canary", "always", "model-api-green"),
            topology.HeaderRule("X-Canary", "never", "model-api"),
        ),
    )
    assert topo.router == expected
    assert topo.candidate.name == "green"
    assert topo.expected_share() == {"blue": 0.7, "green": 0.3}


def test_replicas_router_splits_by_replica_counts() -> None:
    topo = topology.read_topology(replicas_release(stable_replicas=3, candidate_replicas=1))
    assert (topo.router.kind, topo.router.weighted) == ("replicas", (("model-api", 100),))
    assert topo.expected_share() == {"blue": 0.75, "green": 0.25}
    assert topo.candidate.name == "green"


def test_a_release_with_one_workload_is_refused_naming_the_value() -> None:
    objects = [o for o in canary_release() if o["metadata"]["name"] != "model-api-green"]
    with pytest.raises(topology.TopologyError, match=r"rollout\.strategy=canary"):
        topology.read_topology(objects)


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ((("a", 80), ("b", 20)), ["80.00% svc_a;", "* svc_b;"]),
        ((("a", 100), ("b", 0)), ["* svc_a;"]),
        ((("a", 0), ("b", 100)), ["* svc_b;"]),
        ((("a", 1), ("b", 2)), ["33.33% svc_a;", "* svc_b;"]),
    ],
)
def test_split_clients_lines(weights: tuple[tuple[str, int], ...], expected: list[str]) -> None:
    assert nginx.split_lines(weights) == expected


def test_httproute_all_weights_zero_is_refused() -> None:
    objects = canary_release()
    route = next(o for o in objects if o["kind"] == "HTTPRoute")
    for ref in route["spec"]["rules"][1]["backendRefs"]:
        ref["weight"] = 0
    with pytest.raises(topology.TopologyError, match="every backendRef weight is 0"):
        topology.read_topology(objects)


def _nginx_config(tmp_path: Path, objects: list[dict]) -> str:
    topo = topology.read_topology(objects)
    backends = {name: [(10000 + i, 1)] for i, name in enumerate(sorted(topo.services)) if topo.services[name]}
    return nginx.config_text(topo.router, backends, listen_port=18080, workdir=tmp_path)


def test_nginx_config_from_httproute_has_the_split_and_the_header_map(tmp_path: Path) -> None:
    config = _nginx_config(tmp_path, canary_release(weight=20))
    assert "80.00% svc_model_api_blue;\n    * svc_model_api_green;" in config
    assert (
        "map $http_x_canary $canary_header_0 {\n    default $canary_weighted;\n"
        '    "~^always$" svc_model_api_green;' in config
    )
    assert "proxy_pass http://$canary_header_0;" in config


def test_nginx_config_from_canary_ingress_routes_never_to_the_stable_service(tmp_path: Path) -> None:
    config = _nginx_config(tmp_path, canary_release(weight=20, router="ingressNginx"))
    assert '"~^always$" svc_model_api_green;\n    "~^never$" svc_model_api;' in config
    assert "80.00% svc_model_api;\n    * svc_model_api_green;" in config


@pytest.mark.parametrize("router", ["gatewayAPI", "ingressNginx"])
def test_real_nginx_accepts_the_generated_config(tmp_path: Path, router: str) -> None:
    if shutil.which(nginx.NGINX) is None:
        pytest.fail("nginx is not installed: apt-get install nginx-light (bash .ci/run does)")
    config_path = tmp_path / "nginx.conf"
    config_path.write_text(_nginx_config(tmp_path, canary_release(router=router)))
    checked = subprocess.run(
        [nginx.NGINX, "-t", "-p", str(tmp_path), "-c", str(config_path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, f"nginx -t refused the generated config:\n{checked.stderr}"


# ---- Prometheus ----


def test_scrape_config_keeps_slot_and_version_as_the_operator_would() -> None:
    objects = canary_release()
    topo = topology.read_topology(objects)
    jobs = prometheus.scrape_configs(objects, topo, {"blue": 9001, "green": 9002})
    assert [j["job_name"] for j in jobs] == ["serviceMonitor/default/model-api/0"]
    targets = {
        (g["targets"][0], g["labels"]["__meta_kubernetes_service_name"]) for g in jobs[0]["static_configs"]
    }
    # The monitor selects the main Service (active slot) and both slot Services, as in a cluster.
    expected = {
        ("127.0.0.1:9001", "model-api"),
        ("127.0.0.1:9001", "model-api-blue"),
        ("127.0.0.1:9002", "model-api-green"),
    }
    assert targets == expected
    slot_rule = {
        "source_labels": ["__meta_kubernetes_pod_label_model_api_io_slot"],
        "target_label": "model_api_io_slot",
        "regex": "(.+)",
        "replacement": "$1",
    }
    assert slot_rule in jobs[0]["relabel_configs"]
    version_source = "__meta_kubernetes_pod_label_" + prometheus.sanitize(VERSION_LABEL)
    assert any(r.get("source_labels") == [version_source] for r in jobs[0]["relabel_configs"])


def test_real_promtool_accepts_the_generated_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (bash .ci/run does)")
    objects = canary_release()
    jobs = prometheus.scrape_configs(objects, topology.read_topology(objects), {"blue": 9001, "green": 9002})
    path = tmp_path / "prometheus.yml"
    path.write_text(prometheus.config_text(jobs))
    checked = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, (
        f"promtool refused the generated config:\n{checked.stdout}{checked.stderr}"
    )


# ---- Wilson interval ----


@pytest.mark.parametrize(
    ("successes", "trials", "confidence", "low", "high"),
    [
        (20, 100, 0.95, 0.1334, 0.2888),  # the textbook example
        (0, 10, 0.95, 0.0, 0.2775),
        (10, 10, 0.95, 0.7225, 1.0),
        (200, 1000, 0.99, 0.1694, 0.2345),  # z = 2.5758, worked by hand
    ],
)
def test_wilson_interval(successes: int, trials: int, confidence: float, low: float, high: float) -> None:
    actual = share.wilson_interval(successes, trials, confidence)
    assert (round(actual[0], 4), round(actual[1], 4)) == (low, high)


def test_wilson_interval_without_trials_says_nothing() -> None:
    assert share.wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_covers_the_true_share_about_as_often_as_promised() -> None:
    rng = random.Random(7)
    trials, runs = 300, 2000
    covered = sum(
        low <= 0.2 <= high
        for low, high in (
            share.wilson_interval(sum(rng.random() < 0.2 for _ in range(trials)), trials, 0.95)
            for _ in range(runs)
        )
    )
    assert 0.93 <= covered / runs <= 0.97


# ---- Argo analysis semantics ----


def _metric(success: str = "", failure: str = "", **limits: int) -> analysis.Metric:
    return analysis.Metric(
        name="m",
        query="q",
        success_condition=success,
        failure_condition=failure,
        count=limits.get("count", 3),
        interval_s=60.0,
        initial_delay_s=0.0,
        failure_limit=limits.get("failure_limit", 0),
        inconclusive_limit=limits.get("inconclusive_limit", 0),
        consecutive_error_limit=limits.get("consecutive_error_limit", 4),
    )


GUARDED_SUCCESS = "len(result) > 0 && !isNaN(result[0]) && result[0] <= 0.05"
GUARDED_FAILURE = "len(result) > 0 && result[0] > 0.05"


@pytest.mark.parametrize(
    ("success", "failure", "result", "phase"),
    [
        ("result[0] <= 0.05", "", [0.01], analysis.SUCCESSFUL),
        ("result[0] <= 0.05", "", [0.2], analysis.FAILED),
        ("result[0] <= 0.05", "", [math.nan], analysis.FAILED),  # NaN compares false: not success
        ("result[0] <= 0.05", "", [], analysis.ERROR),  # empty vector: index out of range
        ("", "result[0] > 0.05", [math.nan], analysis.SUCCESSFUL),  # the argo-rollouts#180 trap
        ("result[0] <= 0.05", "result[0] > 0.05", [math.nan], analysis.INCONCLUSIVE),
        (GUARDED_SUCCESS, GUARDED_FAILURE, [], analysis.INCONCLUSIVE),  # no data: inconclusive
        (GUARDED_SUCCESS, GUARDED_FAILURE, [math.nan], analysis.INCONCLUSIVE),
        (GUARDED_SUCCESS, GUARDED_FAILURE, [0.0], analysis.SUCCESSFUL),
        (GUARDED_SUCCESS, GUARDED_FAILURE, [0.3], analysis.FAILED),
        ("result >= 0", "result >= 0", 1.0, analysis.FAILED),  # failure wins when both hold
        ("", "", [], analysis.SUCCESSFUL),  # no conditions: successful unless the query fails
        ("all(result, {# < 1})", "", [0.5, 0.7], analysis.SUCCESSFUL),
        ("any(result, {# > 1})", "", [0.5, 0.7], analysis.FAILED),
        ("result[0] < 1 || true", "", [], analysis.ERROR),
        ("isNaN(result)", "", math.nan, analysis.SUCCESSFUL),  # a scalar result
    ],
)
def test_measurement_phase_follows_argo(success: str, failure: str, result: object, phase: str) -> None:
    assert analysis.measurement_phase(_metric(success, failure), result)[0] == phase


@pytest.mark.parametrize(
    ("phases", "limits", "expected"),
    [
        ([analysis.SUCCESSFUL] * 3, {}, analysis.SUCCESSFUL),
        ([analysis.SUCCESSFUL, analysis.FAILED, analysis.SUCCESSFUL], {}, analysis.FAILED),
        (
            [analysis.SUCCESSFUL, analysis.FAILED, analysis.SUCCESSFUL],
            {"failure_limit": 1},
            analysis.SUCCESSFUL,
        ),
        ([analysis.INCONCLUSIVE, analysis.SUCCESSFUL, analysis.SUCCESSFUL], {}, analysis.INCONCLUSIVE),
        ([analysis.ERROR] * 3, {}, analysis.SUCCESSFUL),  # errors within consecutiveErrorLimit: beware
        ([analysis.ERROR] * 5, {"count": 5}, analysis.ERROR),
        ([analysis.ERROR] * 2, {"consecutive_error_limit": 1, "count": 2}, analysis.ERROR),
    ],
)
def test_metric_phase_follows_argo_limits(phases: list[str], limits: dict[str, int], expected: str) -> None:
    assert analysis.metric_phase(_metric("result[0] < 1", **limits), phases) == expected


@pytest.mark.parametrize(
    ("phases", "verdict"),
    [
        ({"a": analysis.SUCCESSFUL, "b": analysis.SUCCESSFUL}, analysis.PROMOTE),
        ({"a": analysis.SUCCESSFUL, "b": analysis.FAILED}, analysis.ABORT),
        ({"a": analysis.ERROR, "b": analysis.INCONCLUSIVE}, analysis.ABORT),
        ({"a": analysis.SUCCESSFUL, "b": analysis.INCONCLUSIVE}, analysis.PAUSE),
    ],
)
def test_verdict(phases: dict[str, str], verdict: str) -> None:
    assert analysis.verdict(phases) == verdict


def test_prometheus_results_as_argo_hands_them_to_conditions() -> None:
    vector = {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "NaN"]}]}
    assert math.isnan(analysis.prometheus_result(vector)[0])
    assert analysis.prometheus_result({"resultType": "vector", "result": []}) == []
    assert analysis.prometheus_result({"resultType": "scalar", "result": [1.0, "0.5"]}) == 0.5


def test_args_are_substituted_and_a_missing_one_is_named() -> None:
    template = canary_release()[-1]
    [error_ratio, _] = analysis.metrics_of(template, {"service-name": "model-api-green"})
    assert 'service="model-api-green"' in error_ratio.query and "{{" not in error_ratio.query
    with pytest.raises(analysis.AnalysisError, match=r"args\.service-name.*--arg service-name=VALUE"):
        analysis.metrics_of(template, {})


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("1m", 60.0), ("1h30m", 5400.0), (5, 5.0)])
def test_durations(text: str | int, seconds: float) -> None:
    assert analysis.seconds(text) == seconds


# ---- the service's rehearsal faults ----


def test_faults_are_off_by_default() -> None:
    assert faults.from_settings(Settings.from_env({})) is None


def test_faults_error_rate_one_answers_every_request_500() -> None:
    injected = faults.from_settings(Settings.from_env({"MODEL_API_REHEARSAL_ERROR_RATE": "1"}))
    assert injected is not None
    with pytest.raises(ApiError) as raised:
        asyncio.run(injected.inject())
    assert raised.value.status == 500


def test_faults_error_rate_above_one_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match="MODEL_API_REHEARSAL_ERROR_RATE"):
        faults.from_settings(Settings.from_env({"MODEL_API_REHEARSAL_ERROR_RATE": "1.5"}))


def test_templates_merge_like_one_analysis_run_and_clashes_are_refused() -> None:
    template = canary_release()[-1]
    first = {
        **template,
        "metadata": {"name": "errors"},
        "spec": {**template["spec"], "metrics": template["spec"]["metrics"][:1]},
    }
    second = {
        **template,
        "metadata": {"name": "latency"},
        "spec": {**template["spec"], "metrics": template["spec"]["metrics"][1:]},
    }
    merged = analysis.merge_templates([first, second])
    assert [m["name"] for m in merged["spec"]["metrics"]] == ["error-ratio", "p99-latency"]
    assert merged["spec"]["args"] == [{"name": "service-name"}]
    with pytest.raises(analysis.AnalysisError, match="two metrics named error-ratio"):
        analysis.merge_templates([first, first])
    with pytest.raises(analysis.AnalysisError, match=r"rollout\.engine: argo"):
        analysis.merge_templates([])


def test_a_weighted_slot_with_no_replicas_is_refused_naming_the_value() -> None:
    objects = canary_release(weight=20)
    green = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "model-api-green"
    )
    green["spec"]["replicas"] = 0
    with pytest.raises(
        topology.TopologyError, match=r"runs 0 replicas \(rollout\.slots\.<slot>\.replicaCount\)"
    ):
        topology.read_topology(objects)


def test_the_charts_own_canary_render_reads_as_configured() -> None:
    values = {
        "rollout": {
            "strategy": "canary",
            "engine": "argo",
            "canary": {"weight": 20, "header": "X-Canary", "router": "gatewayAPI"},
            "slots": {"blue": {"model": {"version": "1.0.0"}}, "green": {"model": {"version": "1.1.0"}}},
        },
        "httpRoute": {"parentRefs": [{"name": "gateway"}]},
    }
    objects = release.render(values)
    topo = topology.read_topology(objects)
    assert topo.expected_share() == {"blue": 0.8, "green": 0.2}
    assert (topo.candidate.name, topo.candidate.version, topo.stable.version) == ("green", "1.1.0", "1.0.0")
    assert topo.header_target() == topology.HeaderRule("X-Canary", "always", "model-api-green")
    template = analysis.merge_templates(release.find(objects, "AnalysisTemplate"))
    assert set(analysis.template_args(template)) == {"service", "namespace"}


def test_shares_count_the_version_header_and_attribute_headerless_errors_by_slot() -> None:
    answers = [
        share.Answer(0.1, share.WEIGHTED, "blue", "1.0.0", True, 1.0),
        share.Answer(0.2, share.WEIGHTED, "blue", "1.0.0", True, 1.0),
        share.Answer(0.3, share.WEIGHTED, "green", None, False, 1.0),  # a 5xx without the header
        share.Answer(0.4, share.WEIGHTED, "green", "1.1.0", True, 1.0),
        share.Answer(0.5, share.HEADER, "green", "1.1.0", True, 1.0),  # header traffic: not in the split
    ]
    computed = share.shares(answers, {"blue": 0.5, "green": 0.5}, {"blue": "1.0.0", "green": "1.1.0"}, 0.95)
    assert [(s.version, s.requests, s.total) for s in computed] == [("1.0.0", 2, 4), ("1.1.0", 2, 4)]


def test_requests_still_in_flight_at_the_end_do_not_bias_the_share() -> None:
    # A 1 s candidate: its last request was cut off by the end of the load, a fast one answered after it.
    answers = [
        share.Answer(5.0, share.WEIGHTED, "green", "1.1.0", True, 1000.0, started=4.0),
        share.Answer(5.2, share.WEIGHTED, "blue", "1.0.0", True, 10.0, started=5.19),
        share.Answer(9.9, share.WEIGHTED, "blue", "1.0.0", True, 10.0, started=9.89),  # sent after the cutoff
    ]
    kept = share.uncensored(answers, load_seconds=10.0)
    assert [a.started for a in kept] == [4.0, 5.19]  # cutoff: 10 - 1.0 (slowest) - 0.5
