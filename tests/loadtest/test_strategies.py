"""Request-based autoscaling replayed: Pods and External metrics through the metric pipeline, KEDA's step to
and from zero, and the strategy comparison of `predict --compare` (loadtest/autoscaling/compare.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from loadtest.autoscaling import compare
from loadtest.autoscaling.pipeline import MetricPipeline, ServiceCosts
from loadtest.autoscaling.simulation import SimulatedPod, predict
from loadtest.autoscaling.spec import Behavior, HpaSpec, HpaSpecError, KedaScaling, MetricTarget
from loadtest.chart import release
from tests.loadtest.predict_cli_helpers import run_cli

COSTS = ServiceCosts(25.0, latency_ms=30.0, p95_ms=60.0)  # 40 requests/s fill a pod's one core
RPS = MetricTarget(
    "", source="Pods", metric_name="model_api_requests_per_second", average_value_milli=14000, signal="rps"
)


def rps_spec(max_replicas: int = 30, metrics: tuple[MetricTarget, ...] = (RPS,)) -> HpaSpec:
    return HpaSpec(3, max_replicas, metrics, Behavior(), {"model-api": {"cpu": 500}})


def prod_spec(max_replicas: int = 30) -> HpaSpec:
    spec = HpaSpec.from_release(release.render(release.load_values([release.ROOT / "values-prod.yaml"])))
    return dataclasses.replace(spec, max_replicas=max_replicas)


# --- the pipeline and the load model ------------------------------------------------------------------


def test_in_flight_is_littles_law_with_queueing() -> None:
    # 20 req/s x 30 ms = 0.6 in flight at no queueing; the pod is half busy (20 x 25 ms), so x 1 / (1 - 0.5)
    expected = 1.2
    actual = COSTS.in_flight(20.0)
    assert actual == pytest.approx(expected), "in flight per pod at 20 req/s"


def test_in_flight_inverse() -> None:
    expected = 20.0
    actual = COSTS.rps_per_pod_for_in_flight(1.2)
    assert actual == pytest.approx(expected, rel=1e-6), "req/s per pod at 1.2 in flight"


def test_a_rate_needs_two_scrapes_and_lags_by_the_pipeline() -> None:
    """A step at t=100 s: the rate() through a 30 s scrape shows nothing at the sync at 105 s (the newest
    sample is 15 s old) and only part of the step at 120 s; the scale-up comes after CPU's would."""
    rows = predict(rps_spec(), [(0.0, 30.0), (100.0, 120.0)], 25.0, duration=240, capacity_millicores=1000)
    first_up = next(r.t for r in rows if r.desired > r.replicas)
    expected = 120.0
    assert first_up == expected, "first sync asking for more pods (rate over the last scraped samples)"


def test_a_pods_metric_averages_not_ready_pods_in() -> None:
    """Unlike CPU, a Pods metric counts a Running pod that is not Ready yet, with the zero traffic it
    serves: after the first scale-up the average drops and the second step is smaller than CPU's rule
    (unready pods left out) would make it."""
    rows = predict(rps_spec(), [(0.0, 30.0), (100.0, 300.0)], 25.0, duration=300, capacity_millicores=1000)
    after_first = [r for r in rows if r.replicas > 3 and r.ready_replicas == 3]
    expected = True
    actual = any("/pod" in r.metrics and r.desired <= 2 * r.replicas for r in after_first)
    assert actual == expected, "syncs with new, not-ready pods averaged in: " + str(
        [(r.t, r.replicas, r.desired, r.metrics) for r in after_first]
    )


def test_served_requests_per_second_saturate_at_a_pods_throughput() -> None:
    rows = predict(rps_spec(max_replicas=3), [(0.0, 300.0)], 25.0, duration=120, capacity_millicores=1000)
    expected = "model_api_requests_per_second 40.0/pod"  # 300 req/s offered to 3 pods of 40 req/s each
    actual = rows[-1].metrics
    assert actual == expected, "what the pods' counters show under overload"


def test_an_in_flight_metric_needs_the_latency() -> None:
    metric = dataclasses.replace(RPS, metric_name="model_api_requests_in_flight", signal="in_flight")
    with pytest.raises(ValueError, match="latency_ms"):
        predict(rps_spec(metrics=(metric,)), [(0.0, 10.0)], 25.0)


# --- KEDA ---------------------------------------------------------------------------------------------


def keda_spec(signal: str) -> HpaSpec:
    metric = MetricTarget(
        "", source="External", metric_name="s0-prometheus", average_value_milli=14000, signal=signal
    )
    return dataclasses.replace(
        rps_spec(metrics=(metric,)), min_replicas=1, keda=KedaScaling(0, 15.0, 300.0, (0.0,))
    )


def test_keda_scales_from_zero_on_the_offered_load_and_pays_the_cold_start() -> None:
    history: list[SimulatedPod] = []
    rows = predict(keda_spec("offered_rps"), [(0.0, 0.0), (100.0, 20.0)], 25.0, duration=400, history=history)
    woke = next(r.t for r in rows if r.replicas == 0 and r.desired > 0)
    ready = next(r.t for r in rows if r.ready_replicas > 0)
    expected = (True, 0, 120.0, 150.0)  # idle start at zero; the trigger is seen at 120 s; Ready 30 s later
    actual = (rows[0].replicas == 0, rows[0].desired, woke, ready)
    assert actual == expected, "(starts at zero, desired at t=0, scale-from-zero sync, first Ready sync)"


def test_keda_on_the_pods_own_series_never_wakes_from_zero() -> None:
    """At zero pods nobody counts the requests: the chart's trigger (the service's own counter) reads 0."""
    rows = predict(keda_spec("rps"), [(0.0, 0.0), (100.0, 20.0)], 25.0, duration=400)
    expected = 0
    actual = max(r.desired for r in rows)
    assert actual == expected, "replicas asked for while requests arrive at a Service with no pod"


def test_keda_scales_to_zero_a_cooldown_after_the_last_activity() -> None:
    rows = predict(keda_spec("offered_rps"), [(0.0, 20.0), (60.0, 0.0)], 25.0, duration=600)
    to_zero = next(r.t for r in rows if r.replicas > 0 and r.desired == 0)
    # the last poll whose rate window still holds traffic is at 90 s (window 45..75 s); + 300 s cooldown
    expected = 390.0
    assert to_zero == expected, f"sync scaling to zero: {[(r.t, r.replicas, r.desired) for r in rows]}"


def write_values(tmp_path: Path, autoscaling: dict) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump({"autoscaling": {"enabled": True, **autoscaling}}))
    return path


ARRIVING = 'sum(rate(nginx_ingress_controller_requests{ingress="model-api"}[2m]))'


def to_zero_values(tmp_path: Path, threshold: float = 0, polling: int = 15) -> Path:
    """KEDA scaling to zero, woken by the chart's requests-arriving trigger (an ingress-nginx counter)."""
    return write_values(
        tmp_path,
        {
            "engine": "keda",
            "minReplicas": 0,
            "maxReplicas": 20,
            "targetCPUUtilizationPercentage": None,
            "targetRequestsPerSecond": 14,
            "keda": {"pollingInterval": polling, "activation": {"query": ARRIVING, "threshold": threshold}},
        },
    )


@pytest.mark.chart
def test_scaled_object_is_read_as_the_hpa_keda_makes(tmp_path: Path) -> None:
    objects = release.render(release.load_values([to_zero_values(tmp_path, threshold=0.5)]))
    spec = HpaSpec.from_release(objects)
    expected = (
        "keda-hpa-model-api",
        1,
        20,
        ("external s0-prometheus 14/pod", "external s1-prometheus 14/pod"),
        ("rps", "offered_rps"),  # the pods' own counter; the requests-arriving trigger: counted in front
        (60.0, 120.0),
        (0, 15.0, (0.0, 0.5)),
    )
    actual = (
        spec.name,
        spec.min_replicas,
        spec.max_replicas,
        tuple(m.describe() for m in spec.metrics),
        tuple(m.signal for m in spec.metrics),
        tuple(m.rate_window for m in spec.metrics),
        (spec.keda.min_replica_count, spec.keda.polling_interval, spec.keda.activation_thresholds)
        if spec.keda
        else None,
    )
    assert actual == expected, (
        "ScaledObject -> (HPA name, min, max, metrics, signals, rate windows, (min, polling, activation))"
    )


@pytest.mark.chart
@pytest.mark.parametrize(
    ("threshold", "polling", "expected"),
    [
        # load 0 -> 20 req/s at t=100 s; the rate()[2m] over 30 s scrapes, newest sample 15 s old, averages
        # [t-105, t-15]: 1.1 req/s at the poll at 120 s, 4.4 at 135 s, 7.8 at 150 s
        (0, 15, 120.0),  # the first poll that sees a request
        (4, 15, 135.0),  # the first poll above the activation threshold
        (4, 30, 150.0),  # ... on KEDA's polling interval
    ],
)
def test_the_charts_scale_to_zero_wakes_after_polling_and_activation(
    tmp_path: Path, threshold: float, polling: int, expected: float
) -> None:
    spec = HpaSpec.from_release(
        release.render(release.load_values([to_zero_values(tmp_path, threshold, polling)]))
    )
    rows = predict(spec, [(0.0, 0.0), (100.0, 20.0)], 25.0, duration=400)
    woke = next((r.t for r in rows if r.replicas == 0 and r.desired > 0), None)
    assert (rows[0].replicas, woke) == (0, expected), "(replicas at the idle start, sync scaling from zero)"


@pytest.mark.chart
def test_hpa_with_request_targets_reads_pods_metrics(tmp_path: Path) -> None:
    values = write_values(tmp_path, {"targetRequestsPerSecond": 14, "targetInFlight": 2})
    spec = HpaSpec.from_release(release.render(release.load_values([values])))
    expected = (
        "cpu 70 %",
        "pods model_api_requests_per_second 14/pod",
        "pods model_api_requests_in_flight 2/pod",
    )
    actual = tuple(m.describe() for m in spec.metrics)
    assert actual == expected, "HPA metrics rendered from the request targets"


def test_a_trigger_query_the_replay_cannot_produce_is_refused() -> None:
    scaled = {
        "spec": {
            "scaleTargetRef": {"name": "w"},
            "triggers": [{"type": "prometheus", "metadata": {"query": "sum(queue_depth)", "threshold": "5"}}],
        }
    }
    workload = {
        "kind": "Deployment",
        "metadata": {"name": "w"},
        "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}},
    }
    with pytest.raises(HpaSpecError, match=r"triggers\[0\]\.metadata\.query"):
        HpaSpec.from_scaled_object(scaled, workload)


# --- the comparison -----------------------------------------------------------------------------------


def spike_runs() -> dict[str, compare.StrategyRun]:
    """The spike example: values-prod.yaml with maxReplicas 30, 30 -> 300 req/s at t=127 s for 300 s."""
    runs = compare.compare(
        compare.strategies(prod_spec(), COSTS),
        compare.spike_load(30.0, 300.0),
        COSTS,
        200.0,
        duration=900,
    )
    return {run.strategy.name.split()[0]: run for run in runs}


def test_spike_example_request_rate_absorbs_a_sync_earlier_than_cpu() -> None:
    """The closing note's example: KEDA on the requests/s arriving at the Service reaches the spike's 22
    pods one 15 s sync before CPU 70 % does, and the spike stops hurting p95 15 s sooner."""
    runs = spike_runs()
    cpu, rate = runs["CPU"], runs["KEDA"]
    needed = 22  # 300 req/s / 14 req/s per pod (the CPU target's load), rounded up
    print(
        f"\nspike 30 -> 300 req/s at t=127 s: {needed} pods asked for at "
        f"t={compare.first_sync_reaching(rate.rows, needed, 127)} s (KEDA, request rate) vs "
        f"t={compare.first_sync_reaching(cpu.rows, needed, 127)} s (CPU 70 %); p95 goal met again "
        f"{rate.score.absorbed_s} s vs {cpu.score.absorbed_s} s after the spike"
    )
    expected = (180.0, 195.0, 68.0, 83.0)
    actual = (
        compare.first_sync_reaching(rate.rows, needed, 127),
        compare.first_sync_reaching(cpu.rows, needed, 127),
        rate.score.absorbed_s,
        cpu.score.absorbed_s,
    )
    assert actual == expected, "(rate: 22 pods asked, CPU: 22 pods asked, rate absorbed, CPU absorbed)"


def test_the_pods_own_request_rate_is_slower_than_cpu_on_a_spike() -> None:
    """The Pods metric counts completed requests (capped at a pod's throughput) through a 30 s scrape and
    a 1 m rate: on the spike it asks for pods later than CPU does."""
    runs = spike_runs()
    expected = True
    actual = runs["RPS"].score.first_scale_up_s > runs["CPU"].score.first_scale_up_s
    assert actual == expected, "the served-rate Pods metric scales up after CPU"


def test_winners_are_the_lowest_per_column() -> None:
    scores = [
        compare.Score("a", 10.0, 5, 30.0, 100.0),
        compare.Score("b", None, 3, 30.0, 120.0),
    ]
    expected = {
        "first_scale_up_s": ["a"],
        "peak_replicas": ["b"],
        "seconds_above_goal": ["a", "b"],
        "pod_minutes": ["a"],
    }
    assert compare.winners(scores) == expected, "winners per column"


def test_faster_pipeline_never_scales_later() -> None:
    """Shorter delays only bring the request-rate scale-up forward."""
    load = compare.spike_load(30.0, 300.0)
    slow = predict(rps_spec(), load, 25.0, duration=400, capacity_millicores=1000)
    fast = predict(
        rps_spec(), load, 25.0, duration=400, capacity_millicores=1000, pipeline=MetricPipeline(15.0, 5.0)
    )
    first = [next(r.t for r in rows if r.desired > r.replicas) for rows in (fast, slow)]
    assert first[0] <= first[1], f"first scale-up with a 5 s scrape {first[0]} vs 30 s {first[1]}"


# `predict --compare` on the built-in spike, without the measurements it needs
COMPARE_ARGV = ["predict", "--values", "values-prod.yaml", "--spike", "30:120", "--cpu-ms-per-request", "25"]
MEASURED = ["--p95-goal-ms", "200", "--p95-ms", "60", "--latency-ms", "30"]


@pytest.mark.chart
def test_predict_compare_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    status = run_cli([*COMPARE_ARGV, "--compare", *MEASURED, "--duration", "600"])
    out = capsys.readouterr().out
    expected = (0, True, True, True)
    actual = (status, "first scale-up s" in out, "KEDA" in out, "winners (* lowest)" in out)
    assert actual == expected, f"(status, header, KEDA row, winners line) in:\n{out}"


@pytest.mark.chart
def test_predict_compare_without_measurements_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    status = run_cli([*COMPARE_ARGV, "--compare"])
    expected = (2, True)
    actual = (status, "--p95-goal-ms" in capsys.readouterr().err)
    assert actual == expected, "(status, the missing option named)"


@pytest.mark.chart
def test_rollout_slots_need_the_autoscaler_named(tmp_path: Path) -> None:
    """values-canary.yaml runs two slots, each with its HPA: the predictor replays the one named."""
    engine = tmp_path / "helm-engine.yaml"
    engine.write_text(yaml.safe_dump({"rollout": {"engine": "helm"}}))
    values = [release.ROOT / "values-prod.yaml", release.ROOT / "values-canary.yaml", engine]
    objects = release.render(release.load_values(values))
    with pytest.raises(
        HpaSpecError, match=r"one autoscaler per running slot \(model-api-blue, model-api-green\)"
    ):
        HpaSpec.from_release(objects)
    expected = ("model-api-green", 3, 10)
    spec = HpaSpec.from_release(objects, "model-api-green")
    assert (spec.name, spec.min_replicas, spec.max_replicas) == expected, "the green slot's HPA"


@pytest.mark.chart
def test_predict_replays_the_charts_scale_to_zero_waking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load = tmp_path / "load.csv"
    load.write_text("t,rps\n0,0\n60,30\n400,0\n")
    argv = ["predict", "--values", str(to_zero_values(tmp_path)), "--load", str(load)]
    status = run_cli([*argv, "--cpu-ms-per-request", "25", "--duration", "600"])
    out = capsys.readouterr().out
    expected = (0, True, False)
    actual = (status, "KEDA: trigger active, scaling from zero" in out, "WARNING" in out)
    assert actual == expected, f"(status, the wake-up sync, a warning) in:\n{out}"


@pytest.mark.chart
def test_a_scaled_object_without_the_arriving_trigger_can_never_wake(tmp_path: Path) -> None:
    """The warning stays for a ScaledObject at zero whose triggers all read the pods' own series: the
    chart's render with its requests-arriving trigger removed (as a hand-written ScaledObject would be)."""
    objects = release.render(release.load_values([to_zero_values(tmp_path)]))
    scaled = release.get(objects, "ScaledObject", "model-api")
    scaled["spec"]["triggers"] = [
        t for t in scaled["spec"]["triggers"] if t.get("name") != "requests-arriving"
    ]
    spec = HpaSpec.from_release(objects)
    rows = predict(spec, [(0.0, 0.0), (60.0, 30.0), (400.0, 0.0)], 25.0, duration=600)
    expected = (0, True)
    warning = compare.stuck_at_zero(spec, rows)
    actual = (
        max(r.desired for r in rows),
        "requests arrived at zero replicas for 345 s (from t=60 s)" in warning,
    )
    assert actual == expected, f"(most replicas asked for, the warning) {warning!r}"
