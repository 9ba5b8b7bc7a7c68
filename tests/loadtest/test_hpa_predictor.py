"""The offline HPA predictor against the Kubernetes documentation's worked examples and the controller rules.

Sources: the "Horizontal Pod Autoscaling" documentation page (algorithm details, scaling policies,
stabilization window, default behavior) and kubernetes/kubernetes pkg/controller/podautoscaler.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes.utils import parse_quantity

from loadtest.autoscaling.controller import Controller
from loadtest.autoscaling.replica_calculator import (
    MetricUnavailable,
    PodSample,
    Proposal,
    Tolerances,
    raw_resource_replicas,
    resource_replicas,
)
from loadtest.autoscaling.simulation import SimulatedPod, predict, rps_at, validate_load, windowed_rps_per_pod
from loadtest.autoscaling.spec import (
    Behavior,
    HpaSpec,
    HpaSpecError,
    MetricTarget,
    ScalingPolicy,
    ScalingRules,
)
from loadtest.chart import release
from tests.loadtest.predict_cli_helpers import run_cli, write_hpa_values

CPU = MetricTarget("cpu", average_utilization=100)


def pods(*usages: int | None, request: int = 100, unready: int = 0) -> list[PodSample]:
    """Ready pods with these CPU usages (None: no metric sample), then `unready` pods at 2x their request."""
    ready = [PodSample(f"ready-{i}", request, usage) for i, usage in enumerate(usages)]
    return ready + [PodSample(f"unready-{i}", request, 2 * request, unready=True) for i in range(unready)]


def spec(min_replicas: int = 1, max_replicas: int = 100, behavior: Behavior | None = None) -> HpaSpec:
    return HpaSpec(min_replicas, max_replicas, (CPU,), behavior, {"model-api": {"cpu": 100}})


def replay(controller: Controller, current: int, desired: int, times: list[float]) -> list[int]:
    """Replica counts after syncs at `times`, the metrics asking for `desired` every time."""
    history = []
    for now in times:
        current = controller.reconcile(now, current, [Proposal(desired, None, 0)]).desired
        history.append(current)
    return history


# --- replica calculator ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "samples", "target", "expected"),
    [
        # docs: current 200m vs desired 100m -> double
        ("200m vs 100m doubles", pods(200, 200), 100, 4),
        # docs: 50m vs 100m -> halve
        ("50m vs 100m halves", pods(50, 50, 50, 50), 100, 2),
        ("ratio 1.05 is inside the tolerance band", pods(105, 105, 105, 105), 100, 4),
        ("ratio 0.95 is inside the tolerance band", pods(95, 95, 95, 95), 100, 4),
        ("ratio exactly 1.1 is still inside the band", pods(110, 110, 110, 110), 100, 4),
        ("ratio 1.11 leaves the band", pods(111, 111, 111, 111), 100, 5),
        # sum(usage)/sum(request) = 200/400 = 50 % -> ratio 2 -> 4; a mean of per-pod percents (66 %) gives 6
        ("utilization is request-weighted", [PodSample("a", 100, 100), PodSample("b", 300, 100)], 25, 4),
        # 1009m/1000m = 100.9 % truncated to 100 % -> ratio 10 -> 10 (untruncated 10.09 would give 11)
        ("utilization is truncated to a whole percent", [PodSample("a", 1000, 1009)], 10, 10),
    ],
)
def test_resource_replicas_worked_examples(
    case: str, samples: list[PodSample], target: int, expected: int
) -> None:
    actual = resource_replicas(len(samples), samples, target).replicas
    assert actual == expected, f"{case}: desired replicas"


@pytest.mark.parametrize(
    ("case", "samples", "target", "expected"),
    [
        # ready pods at 200 %: a naive ceil(2 x 4) = 8; unready pods count as 0 % -> ratio 1.0 -> no change
        ("unready pods count as 0 % on scale-up", pods(200, 200, unready=2), 100, 4),
        ("unready pods: the ready ones still drive a big scale-up", pods(300, 300, unready=2), 100, 6),
        # scale-down: unready pods are simply left out -> ceil(0.5 x 2 ready) = 1
        ("unready pods are ignored on scale-down", pods(50, 50, unready=2), 100, 1),
        # missing as 100 % on scale-down: (50 x 3 + 100) / 400 = 62 % -> ceil(0.62 x 4) = 3, not ceil(0.5 x 3)
        ("missing pods count as 100 % on scale-down", pods(50, 50, 50, None), 100, 3),
        # missing as 0 % on scale-up: (200 + 200 + 0 + 0) / 400 = 100 % -> inside the band -> no change
        ("missing pods count as 0 % on scale-up", pods(200, 200, None, None), 100, 4),
        # 40 % vs target 50 % (ratio 0.8); missing at 100 % -> (40 + 100) / 200 = 70 % -> ratio 1.4: a flip
        ("no change when the missing pods flip the direction", pods(40, None), 50, 2),
        # target 150 %: missing pods count at the target -> (3 x 60 + 150) / 400 = 82 % -> ceil(0.546 x 4) = 3
        ("missing pods count at a target above 100 %", pods(60, 60, 60, None), 150, 3),
    ],
)
def test_resource_replicas_unready_and_missing_pods(
    case: str, samples: list[PodSample], target: int, expected: int
) -> None:
    actual = resource_replicas(len(samples), samples, target).replicas
    assert actual == expected, f"{case}: desired replicas"


def one_core_pods(ready: list[int], unready: Sequence[int | None] = ()) -> list[PodSample]:
    """Pods requesting 1 CPU: ready ones at these millicores, then unready ones (None: pending, no sample)."""
    return [PodSample(f"ready-{i}", 1000, m) for i, m in enumerate(ready)] + [
        PodSample(f"unready-{i}", 1000, m, unready=True) for i, m in enumerate(unready)
    ]


# Cases of the controller's own replica_calculator_test.go (TestReplicaCalc...), requests of 1 CPU per pod.
@pytest.mark.parametrize(
    ("case", "current", "samples", "target", "expected_replicas", "expected_utilization"),
    [
        ("ScaleUp", 3, one_core_pods([300, 500, 700]), 30, 5, 50),
        ("ScaleUpUnreadyLessScale", 3, one_core_pods([500, 700], [300]), 30, 4, 60),
        ("ScaleUpUnreadyNoScale", 3, one_core_pods([400], [500, 700]), 30, 3, 40),
        ("ScaleDown", 5, one_core_pods([100, 300, 500, 250, 250]), 50, 3, 28),
        ("ScaleDownExcludeUnreadyPods", 5, one_core_pods([100, 300, 500], [250, 250]), 50, 2, 30),
        ("ScaleDownExcludeUnscheduledPods", 5, one_core_pods([100], [None, None, None, None]), 50, 1, 10),
    ],
)
def test_controller_unit_cases(
    case: str,
    current: int,
    samples: list[PodSample],
    target: int,
    expected_replicas: int,
    expected_utilization: int,
) -> None:
    proposal = resource_replicas(current, samples, target)
    actual = (proposal.replicas, proposal.utilization)
    assert actual == (expected_replicas, expected_utilization), f"{case}: (replicas, utilization)"


@pytest.mark.parametrize(
    ("case", "current", "levels", "target", "expected"),
    [
        ("ScaleUpCM", 3, [20000, 10000, 30000], 15000, 4),
        ("ScaleDownCM", 5, [12000] * 5, 20000, 3),
        # readiness is ignored for non-CPU metrics: all three pods count (ScaleUpCMUnreadyHotCpuNoLessScale)
        ("ScaleUpCMUnreadyHotCpuNoLessScale", 3, [50000, 10000, 30000], 15000, 6),
    ],
)
def test_controller_unit_cases_average_value(
    case: str, current: int, levels: list[int], target: int, expected: int
) -> None:
    samples = [PodSample(f"pod-{i}", 0, level) for i, level in enumerate(levels)]
    actual = raw_resource_replicas(current, samples, target).replicas
    assert actual == expected, f"{case}: replicas"


def test_resource_replicas_reports_utilization_of_ready_pods_only() -> None:
    expected = Proposal(replicas=4, utilization=200, raw_average=200)
    actual = resource_replicas(4, pods(200, 200, unready=2), 100)
    assert actual == expected, "proposal: utilization must come from the ready pods' first pass"


def test_resource_replicas_without_ready_metrics_is_unavailable() -> None:
    with pytest.raises(MetricUnavailable, match="did not receive metrics"):
        resource_replicas(2, pods(unready=2), 100)


def test_configurable_tolerance_per_direction() -> None:
    expected = (4, 5)  # 1.08 is inside a 0.1 band but outside a 0.05 scale-up tolerance
    samples = pods(108, 108, 108, 108)
    actual = (
        resource_replicas(4, samples, 100, Tolerances()).replicas,
        resource_replicas(4, samples, 100, Tolerances(scale_up=0.05)).replicas,
    )
    assert actual == expected, "desired replicas with tolerance 0.1 and with scale-up tolerance 0.05"


# --- the controller: metrics, bounds, behavior ------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "current", "proposals", "expected"),
    [
        ("several metrics: the largest proposal wins", 4, [Proposal(3, 30, 0), Proposal(7, 90, 0)], 7),
        ("a failed metric does not stop a scale-up", 4, [MetricUnavailable("x"), Proposal(7, 90, 0)], 7),
        ("a failed metric blocks a scale-down", 4, [MetricUnavailable("x"), Proposal(2, 20, 0)], 4),
        ("all metrics failed: no change", 4, [MetricUnavailable("x")], 4),
    ],
)
def test_several_metrics(case: str, current: int, proposals: list, expected: int) -> None:
    no_windows = Behavior(
        scale_down=ScalingRules((ScalingPolicy("Percent", 100, 15),), stabilization_window_seconds=0)
    )
    two_metrics = HpaSpec(1, 100, (CPU, MetricTarget("memory", average_utilization=80)), no_windows, {})
    actual = Controller(two_metrics).reconcile(0.0, current, proposals).desired
    assert actual == expected, f"{case}: desired replicas"


@pytest.mark.parametrize(
    ("case", "current", "proposal", "expected_desired", "expected_limited"),
    [
        ("clamped to maxReplicas", 8, 15, 10, "TooManyReplicas"),
        ("clamped to minReplicas", 3, 1, 2, "TooFewReplicas"),
        ("current above maxReplicas is brought down", 12, 12, 10, "DesiredWithinRange"),
        ("current below minReplicas is brought up", 1, 1, 2, "DesiredWithinRange"),
    ],
)
def test_min_max_clamps(
    case: str, current: int, proposal: int, expected_desired: int, expected_limited: str
) -> None:
    zero_windows = Behavior(
        scale_down=ScalingRules((ScalingPolicy("Percent", 100, 15),), stabilization_window_seconds=0)
    )
    decision = Controller(spec(2, 10, zero_windows)).reconcile(0.0, current, [Proposal(proposal, None, 0)])
    actual = (decision.desired, decision.scaling_limited)
    assert actual == (expected_desired, expected_limited), f"{case}: (desired, ScalingLimited reason)"


@pytest.mark.parametrize(
    ("case", "behavior", "expected"),
    [
        # behavior unset: the controller's legacy limit max(2 x current, 4) per sync, no event history
        ("behavior unset", None, [4, 8, 16, 32, 64, 100]),
        # the API's default policies: +100 % or +4 pods per 15 s, whichever is more
        ("default policies", Behavior(), [5, 10, 20, 40, 80, 100]),
    ],
)
def test_default_scale_up_limit_per_15s(case: str, behavior: Behavior | None, expected: list[int]) -> None:
    actual = replay(Controller(spec(behavior=behavior)), 1, 1000, [15.0 * sync for sync in range(6)])
    assert actual == expected, f"{case}: replicas after each sync from 1 replica under an unbounded proposal"


def test_scale_up_policies_count_from_the_replicas_at_the_start_of_the_period() -> None:
    # 1 -> 5 at t=0; at t=5 the 15 s period still started at 1 replica: max(1 + 4, 2 x 1) = 5, not 10
    expected = [5, 5]
    controller = Controller(spec(behavior=Behavior()))
    first = controller.reconcile(0.0, 1, [Proposal(1000, None, 0)]).desired
    second = controller.reconcile(5.0, first, [Proposal(1000, None, 0)]).desired
    assert [first, second] == expected, "replicas after syncs at t=0 and t=5 with the default policies"


def docs_scale_down(select_policy: str = "Max") -> Behavior:
    """The documentation's scale-down example: 4 pods or 10 % per 60 s, no stabilization."""
    policies = (ScalingPolicy("Pods", 4, 60), ScalingPolicy("Percent", 10, 60))
    return Behavior(scale_down=ScalingRules(policies, select_policy, stabilization_window_seconds=0))


@pytest.mark.parametrize(
    ("case", "behavior", "expected"),
    [
        # docs: 80 -> 72 (10 % = 8 pods beats 4 pods), nothing more inside the minute, then 72 -> 64
        ("selectPolicy Max: the biggest change", docs_scale_down("Max"), [72, 72, 72, 72, 64]),
        ("selectPolicy Min: the smallest change", docs_scale_down("Min"), [76, 76, 76, 76, 72]),
        ("selectPolicy Disabled: no scale-down", docs_scale_down("Disabled"), [80, 80, 80, 80, 80]),
    ],
)
def test_docs_scale_down_policies(case: str, behavior: Behavior, expected: list[int]) -> None:
    actual = replay(Controller(spec(behavior=behavior)), 80, 10, [0, 15, 30, 45, 60])
    assert actual == expected, f"{case}: replicas after each sync"


def test_docs_scale_down_policy_switches_to_pods_below_40_replicas() -> None:
    # at 30 replicas 10 % is 3 pods, less than the 4-pod policy, so Max picks 4 pods -> 26
    expected = [26]
    actual = replay(Controller(spec(behavior=docs_scale_down("Max"))), 30, 10, [0])
    assert actual == expected, "replicas after one sync from 30"


def test_scale_down_stabilization_window_holds_the_highest_recommendation_for_300s() -> None:
    behavior = Behavior(
        scale_down=ScalingRules((ScalingPolicy("Percent", 100, 15),), stabilization_window_seconds=300)
    )
    controller = Controller(spec(behavior=behavior))
    controller.reconcile(0.0, 10, [Proposal(10, None, 0)])  # the highest recommendation, at t=0
    times = [15.0 * i for i in range(1, 21)]  # t = 15 ... 300
    expected = [10] * 19 + [4]  # held while t=0 is inside (t-300, t]; released at t=300
    actual = replay(controller, 10, 4, times)
    assert actual == expected, "replicas after each sync while load is low"


def test_scale_down_stabilization_reports_scale_down_stabilized() -> None:
    behavior = Behavior(
        scale_down=ScalingRules((ScalingPolicy("Percent", 100, 15),), stabilization_window_seconds=300)
    )
    controller = Controller(spec(behavior=behavior))
    controller.reconcile(0.0, 10, [Proposal(10, None, 0)])
    actual = controller.reconcile(15.0, 10, [Proposal(4, None, 0)]).able_to_scale
    assert actual == "ScaleDownStabilized", "AbleToScale reason while the window holds"


def test_scale_up_stabilization_window_takes_the_lowest_recommendation() -> None:
    scale_up = ScalingRules((ScalingPolicy("Percent", 100, 15),), stabilization_window_seconds=60)
    controller = Controller(spec(behavior=Behavior(scale_up=scale_up)))
    # the initial recommendation (4 at t=0) is the minimum while inside (t-60, t]: released at t=60
    expected = [4, 4, 4, 4, 8]
    actual = replay(controller, 4, 8, [0, 15, 30, 45, 60])
    assert actual == expected, "replicas after each sync under a 60 s scale-up window"


def test_legacy_path_holds_scale_down_for_the_default_300s_window() -> None:
    controller = Controller(spec())
    controller.reconcile(0.0, 10, [Proposal(10, None, 0)])
    expected = [10, 10, 4]  # t=0 counts while not before now-300 (the legacy rule), so released at 315
    actual = replay(controller, 10, 4, [15.0, 300.0, 315.0])
    assert actual == expected, "replicas with behavior unset"


# --- reading the HPA from manifests and the rendered chart -----------------------------------------------


def hpa_manifest(**spec_fields: object) -> dict:
    spec_body = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model-api"},
        "maxReplicas": 10,
        **spec_fields,
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "model-api"},
        "spec": spec_body,
    }


def deployment(requests: dict | None = None, limits: dict | None = None) -> dict:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}
    container = {"name": "model-api", "resources": resources}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "model-api"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }


def test_spec_defaults_as_the_api_server_applies_them() -> None:
    expected = HpaSpec(
        1,
        10,
        (MetricTarget("cpu", average_utilization=80),),
        None,
        {"model-api": {"cpu": 250}},
        None,
        "model-api",
    )
    actual = HpaSpec.from_manifests(hpa_manifest(), deployment({"cpu": "250m"}))
    assert actual == expected, "HpaSpec of an HPA without minReplicas, metrics and behavior"


def test_partial_behavior_is_completed_with_defaults() -> None:
    behavior = {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    expected = Behavior(scale_down=ScalingRules((ScalingPolicy("Pods", 1, 60),), "Max", None))
    actual = HpaSpec.from_manifests(hpa_manifest(behavior=behavior), deployment({"cpu": "1"})).behavior
    assert actual == expected, "behavior: scaleUp defaulted, scaleDown policies kept, window left to the flag"


def test_cpu_limit_and_requests_in_millicores() -> None:
    expected = ({"model-api": {"cpu": 500, "memory": 128 * 2**20 * 1000}}, 1500)
    parsed = HpaSpec.from_manifests(
        hpa_manifest(), deployment({"cpu": "0.5", "memory": "128Mi"}, {"cpu": "1500m"})
    )
    actual = (parsed.container_requests, parsed.cpu_limit_milli)
    assert actual == expected, "container_requests and cpu_limit_milli"


@pytest.mark.parametrize(
    ("case", "hpa", "workload", "message"),
    [
        ("no CPU request", hpa_manifest(), deployment({"memory": "1Gi"}), "no resources.requests.cpu"),
        (
            "a Pods metric without a name",
            hpa_manifest(metrics=[{"type": "Pods", "pods": {}}]),
            deployment({"cpu": "1"}),
            r"metrics\[0\]\.pods\.metric\.name is missing",
        ),
        (
            "a Pods metric the replay cannot produce",
            hpa_manifest(
                metrics=[
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "queue_depth"},
                            "target": {"type": "AverageValue", "averageValue": "5"},
                        },
                    }
                ]
            ),
            deployment({"cpu": "1"}),
            "metric 'queue_depth'",
        ),
        (
            "an unknown metric type",
            hpa_manifest(metrics=[{"type": "CheddarCheese"}]),
            deployment({"cpu": "1"}),
            "type 'CheddarCheese'",
        ),
        (
            "autoscaling/v1",
            {**hpa_manifest(), "apiVersion": "autoscaling/v1"},
            deployment({"cpu": "1"}),
            "expected autoscaling/v2",
        ),
        (
            "a bad selectPolicy",
            hpa_manifest(behavior={"scaleUp": {"selectPolicy": "Fastest"}}),
            deployment({"cpu": "1"}),
            "selectPolicy must be",
        ),
    ],
)
def test_spec_errors_name_the_problem(case: str, hpa: dict, workload: dict, message: str) -> None:
    with pytest.raises(HpaSpecError, match=message):
        HpaSpec.from_manifests(hpa, workload)


@pytest.mark.chart
def test_release_without_hpa_is_a_clear_error() -> None:
    objects = release.render(release.load_values([], {"autoscaling": {"enabled": False}}))
    with pytest.raises(HpaSpecError, match="no HorizontalPodAutoscaler"):
        HpaSpec.from_release(objects)


PROD_VALUES = Path(release.ROOT, "values-prod.yaml")


@pytest.mark.chart
def test_spec_from_the_rendered_prod_release() -> None:
    objects = release.render(release.load_values([PROD_VALUES]))
    hpa = release.get(objects, "HorizontalPodAutoscaler")
    container = release.main_container(objects)
    expected = (
        hpa["spec"].get("minReplicas", 1),
        hpa["spec"]["maxReplicas"],
        Behavior.from_manifest(hpa["spec"].get("behavior")),
        math.ceil(parse_quantity(container["resources"]["requests"]["cpu"]) * 1000),
    )
    parsed = HpaSpec.from_release(objects)
    actual = (
        parsed.min_replicas,
        parsed.max_replicas,
        parsed.behavior,
        parsed.container_requests[container["name"]]["cpu"],
    )
    assert actual == expected, "HpaSpec (minReplicas, maxReplicas, behavior, CPU request) of values-prod.yaml"


# --- the simulation ------------------------------------------------------------------------------------


def cpu_spec(max_replicas: int = 10, limit: int | None = None) -> HpaSpec:
    """minReplicas 1, CPU target 50 % of a 100m request, the API's default behavior."""
    metric = MetricTarget("cpu", average_utilization=50)
    return HpaSpec(1, max_replicas, (metric,), Behavior(), {"model-api": {"cpu": 100}}, limit)


def test_predict_scales_a_step_to_the_replicas_the_load_needs() -> None:
    # 40 rps x 5 ms = 200 millicores = 4 pods at 50 % of 100m
    expected_peak = 4
    timeline = predict(cpu_spec(), [(0, 0), (30, 40)], 5.0, ready_delay=30, duration=300)
    actual_peak = max(row.ready_replicas for row in timeline)
    assert actual_peak == expected_peak, "ready replicas at the peak"


def test_predict_does_not_overshoot_while_new_pods_start() -> None:
    # with unready pods counted at 0 % the controller never asks for more than the 4 the load needs
    expected = 4
    timeline = predict(cpu_spec(), [(0, 0), (30, 40)], 5.0, ready_delay=60, duration=300)
    actual = max(row.desired for row in timeline)
    assert actual == expected, "highest desired replicas during the ramp"


def test_predict_utilization_is_capped_by_a_cpu_limit() -> None:
    expected = 150  # a 150m limit on a 100m request: usage cannot show more than 150 %
    timeline = predict(cpu_spec(max_replicas=1, limit=150), [(0, 100)], 5.0, duration=30)
    actual = max(row.utilization or 0 for row in timeline)
    assert actual == expected, "utilization of a throttled pod"


@pytest.mark.parametrize(
    ("case", "metric_window", "expected_first_scale_up"),
    [
        ("metrics-server's 15 s window: the step shows fully one sync later", 15.0, 45.0),
        ("no window: the sync at the step sees it at once", 0.0, 30.0),
    ],
)
def test_predict_reads_cpu_through_the_metric_window(
    case: str, metric_window: float, expected_first_scale_up: float
) -> None:
    timeline = predict(
        cpu_spec(), [(0, 0), (30, 40)], 5.0, ready_delay=30, duration=120, metric_window=metric_window
    )
    actual = next(row.t for row in timeline if row.desired > row.replicas)
    assert actual == expected_first_scale_up, f"{case}: time of the first scale-up"


def test_windowed_rps_averages_the_window_and_shares_by_the_pods_ready_then() -> None:
    # 2 pods ready since long ago, a third ready at t=50; load 30 rps from t=40.
    # samples at 36..50: 4 at 0 rps, 10 at 30/2, 1 at 30/3 → (10 x 15 + 10) / 15
    expected = (10 * 15 + 10) / 15
    pods_ = [SimulatedPod("a", -1e9, 0.0), SimulatedPod("b", -1e9, 0.0), SimulatedPod("c", 20.0, 50.0)]
    actual = windowed_rps_per_pod([(0, 0), (40, 30)], pods_, 50.0, 15.0)
    assert actual == pytest.approx(expected), "requests/s per ready pod over the metric window"


@pytest.mark.parametrize(
    ("t", "expected_rps"),
    [(-1.0, 0.0), (0.0, 0.0), (9.9, 0.0), (10.0, 40.0), (29.0, 40.0), (30.0, 5.0), (1e6, 5.0)],
)
def test_rps_at_holds_each_step_until_the_next_row(t: float, expected_rps: float) -> None:
    actual = rps_at([(0, 0), (10, 40), (30, 5)], t)
    assert actual == expected_rps, f"requests/s held at t={t}"


def test_predict_rows_are_syncs_every_15s() -> None:
    expected = [0.0, 15.0, 30.0, 45.0, 60.0]
    actual = [row.t for row in predict(cpu_spec(), [(0, 1)], 1.0, duration=60)]
    assert actual == expected, "sync times"


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 120), st.floats(0, 500)), min_size=1, max_size=6),
    ready_delay=st.sampled_from([0, 15, 45, 90]),
    behavior=st.sampled_from([None, Behavior(), docs_scale_down("Min")]),
)
def test_predict_invariants(
    steps: list[tuple[int, float]], ready_delay: int, behavior: Behavior | None
) -> None:
    load, t = [], 0
    for gap, rps in steps:
        load.append((t, rps))
        t += gap
    hpa = HpaSpec(
        2, 12, (MetricTarget("cpu", average_utilization=60),), behavior, {"model-api": {"cpu": 100}}
    )
    timeline = predict(hpa, load, 3.0, ready_delay=ready_delay, duration=t + 400)
    bounds = [(row.t, row.desired) for row in timeline if not 2 <= row.desired <= 12]
    ready = [
        (row.t, row.ready_replicas, row.replicas) for row in timeline if row.ready_replicas > row.replicas
    ]
    carried = [
        (a.t, a.desired, b.replicas) for a, b in itertools.pairwise(timeline) if a.desired != b.replicas
    ]
    assert (bounds, ready, carried) == ([], [], []), (
        "(desired out of bounds, ready > replicas, desired not applied)"
    )


@pytest.mark.parametrize(
    ("case", "load", "message"),
    [
        ("empty", [], "empty"),
        ("negative rps", [(0, -1)], "rps must be >= 0"),
        ("t not increasing", [(0, 1), (0, 2)], "t must increase"),
        ("negative t", [(-5, 1)], "t must be >= 0"),
    ],
)
def test_bad_load_is_a_clear_error(case: str, load: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_load(load)


# --- `python -m loadtest predict` --------------------------------------------------------------------------


@pytest.fixture
def hpa_values(tmp_path: Path) -> Path:
    return write_hpa_values(tmp_path)


def write_load(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "load.csv"
    path.write_text(text)
    return path


def test_predict_command_writes_every_sync(
    tmp_path: Path, hpa_values: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load = write_load(tmp_path, "t,rps\n0,10\n60,200\n")
    out = tmp_path / "timeline.csv"
    argv = ["predict", "--values", str(hpa_values), "--load", str(load), "--cpu-ms-per-request", "5",
            "--duration", "300", "--out", str(out)]  # fmt: skip
    status = run_cli(argv)
    rows = list(csv.DictReader(out.open()))
    expected = (0, [str(15.0 * i) for i in range(21)], True)
    actual = (status, [row["t"] for row in rows], all(row["replicas"] and row["utilization"] for row in rows))
    assert actual == expected, (
        "(exit status, sync times, replicas and utilization on every row) of timeline.csv"
    )
    assert "peak replicas" in capsys.readouterr().out, "predict prints its summary"


@pytest.mark.parametrize(
    ("case", "load_text", "values", "message"),
    [
        ("missing rps column", "t,requests\n0,1\n", None, "missing column(s) rps"),
        ("negative rps", "t,rps\n0,-3\n", None, "rps must be >= 0"),
        ("t not increasing", "t,rps\n0,1\n30,2\n30,3\n", None, "t must increase"),
        ("not a number", "t,rps\n0,lots\n", None, "line 2"),
        (
            "unknown values file",
            "t,rps\n0,1\n",
            "no-such-values.yaml",
            "values file not found: no-such-values.yaml",
        ),
    ],
)
def test_predict_command_bad_input_exits_2(
    tmp_path: Path, hpa_values: Path, capsys: pytest.CaptureFixture[str], case: str, load_text: str,
    values: str | None, message: str,
) -> None:  # fmt: skip
    load = write_load(tmp_path, load_text)
    argv = [
        "predict",
        "--values",
        values or str(hpa_values),
        "--load",
        str(load),
        "--cpu-ms-per-request",
        "5",
    ]
    status = run_cli(argv)
    err = capsys.readouterr().err
    assert (status, message in err) == (2, True), f"{case}: (exit status, message) with stderr {err!r}"


def test_predict_command_without_hpa_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = tmp_path / "no-hpa.yaml"
    values.write_text(yaml.safe_dump({"autoscaling": {"enabled": False}}))
    load = write_load(tmp_path, "t,rps\n0,1\n")
    status = run_cli(["predict", "--values", str(values), "--load", str(load), "--cpu-ms-per-request", "5"])
    err = capsys.readouterr().err
    assert (status, "no HorizontalPodAutoscaler" in err) == (2, True), f"(exit status, message) with {err!r}"


@pytest.mark.parametrize(
    ("case", "load_text", "expected"),
    [
        # the load rises at t=50, between syncs: the sync at t=60 scales up, 10 s after it, not 0 s after the
        # sync at t=60 that first shows it; the load falls at t=200, not at the sync at t=210
        (
            "rise between syncs",
            "t,rps\n0,10\n50,400\n200,10\n",
            ("60 s after the load first rose, 10 s after the last rise", "fell (t=200 s)"),
        ),
        # the first row is itself the rise (0 rps before it)
        (
            "rise at t=0",
            "t,rps\n0,400\n200,0\n",
            ("15 s after the load first rose, 15 s after the last rise", "fell (t=200 s)"),
        ),
    ],
)
def test_predict_command_summary_times_from_the_load_curve(
    tmp_path: Path, hpa_values: Path, capsys: pytest.CaptureFixture[str], case: str, load_text: str,
    expected: tuple[str, str],
) -> None:  # fmt: skip
    load = write_load(tmp_path, load_text)
    argv = ["predict", "--values", str(hpa_values), "--load", str(load), "--cpu-ms-per-request", "5",
            "--duration", "900"]  # fmt: skip
    status = run_cli(argv)
    summary = capsys.readouterr().out.splitlines()[-1]
    actual = (status, expected[0] in summary, expected[1] in summary)
    assert actual == (0, True, True), f"{case}: (exit status, scale-up time, scale-down) in {summary!r}"


@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        ("blank line before the bad row", b"t,rps\n0,10\n\n60,\n", "line 4"),
        ("unsorted after a blank line", b"t,rps\n60,10\n\n0,5\n", "line 4"),
        ("not UTF-8", b"\xff\xfet,rps\n", "load.csv"),
    ],
)
def test_predict_command_bad_file_names_the_real_line(
    tmp_path: Path, hpa_values: Path, capsys: pytest.CaptureFixture[str], case: str, content: bytes,
    message: str,
) -> None:  # fmt: skip
    load = tmp_path / "load.csv"
    load.write_bytes(content)
    argv = ["predict", "--values", str(hpa_values), "--load", str(load), "--cpu-ms-per-request", "5"]
    status = run_cli(argv)
    err = capsys.readouterr().err
    assert (status, message in err) == (2, True), f"{case}: (exit status, message) with stderr {err!r}"


def test_spec_from_release_counts_the_container_the_service_targets() -> None:
    """The service container (its CPU limit, listed first in container_requests) is read from the release:
    the one the Service targets, even behind a sidecar and under another name."""
    objects = release.render({"autoscaling": {"enabled": True}, "resources": {"limits": {"cpu": "2"}}})
    spec = release.workload(objects)["spec"]["template"]["spec"]
    sidecar = {"name": "proxy", "image": "envoy", "resources": {"requests": {"cpu": "50m"}}}
    spec["containers"] = [sidecar, {**spec["containers"][0], "name": "server"}]
    parsed = HpaSpec.from_release(objects)
    expected = ("server", ["server", "proxy"], 2000)
    actual = (parsed.main_container, list(parsed.container_requests), parsed.cpu_limit_milli)
    assert actual == expected, "(main container, containers in order, CPU limit) with a sidecar listed first"
