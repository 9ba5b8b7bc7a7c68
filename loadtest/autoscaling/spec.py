"""Offline HorizontalPodAutoscaler predictor: the autoscaling/v2 controller replayed on a load curve.

Faithful to kube-controller-manager's HPA controller (`pkg/controller/podautoscaler/horizontal.go` and
`replica_calculator.go`), with its default flags: a sync every 15 s, tolerance 0.1, downscale
stabilization 300 s, CPU initialization period 300 s, tolerance band 0.9 <= ratio <= 1.1 (no change inside).
When ``behavior`` is unset the API server leaves it unset and the controller takes its legacy path:
scale-up to at most max(2 x current, 4) per sync, scale-down after the 300 s window with no rate
limit. When ``behavior`` is set, unset fields get the API defaults (scale-up: the larger of +100 % and
+4 pods per 15 s, no window; scale-down: 100 % per 15 s after the 300 s window).

Public API
----------
``HpaSpec.from_release(objects) -> HpaSpec``
    minReplicas, maxReplicas, metrics and behavior of the rendered HPA (API-server defaults applied),
    plus the requests and CPU limit of the rendered workload's pod.
``predict(spec, load, cpu_ms_per_request, *, ready_delay=30, duration=None, idle_millicores=0,
memory_bytes_per_pod=None, initial_replicas=None) -> list[SyncRow]``
    Replays ``load`` (``(t seconds, rps)`` steps, each held until the next row; 0 rps before the first)
    and returns one ``SyncRow`` per controller sync.
``SyncRow(t, rps, ready_replicas, replicas, desired, utilization, target, reason, pod_cpu_millicores)``
    ``replicas`` is the workload's replica count when the sync starts (pods started count at once),
    ``desired`` the count the sync sets, ``utilization`` the CPU utilization the HPA reports (integer
    percent of the request, ``None`` when no ready pod has a metric), ``target`` the CPU target percent.
The controller's pieces are public too, for tests and for the sizing module: ``resource_replicas``
(GetResourceReplicas), ``raw_resource_replicas`` (calcPlainMetricReplicas), ``Controller`` (per-HPA state:
recommendation history, scale events; ``reconcile`` = the part of reconcileAutoscaler after the metrics).

Model of the workload
---------------------
Each pod's CPU usage = its share of the rps (the Service sends traffic to ready pods only, evenly) x
``cpu_ms_per_request`` millicores, plus ``idle_millicores``, capped at the container's CPU limit when it
has one (CFS throttling). Memory usage, when the HPA scales on memory, is ``memory_bytes_per_pod``.
A new pod is Running at once and Ready ``ready_delay`` seconds later; its metric is then ignored for
one metric window more (the controller's rule inside the CPU initialization period). A pod's CPU is
what metrics-server reports: the average over the metric window before the sync (a rate between two
cumulative readings), so a load step shows fully one window after it lands; every pod has a sample
(the calculator handles missing samples; the replay never produces them). A scale-down removes
not-ready pods first, then the most recently ready (the ReplicaSet controller's ranking).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubernetes.utils import parse_quantity

from loadtest.chart import release

SYNC_PERIOD = 15.0  # --horizontal-pod-autoscaler-sync-period
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance
DOWNSCALE_STABILIZATION = 300  # --horizontal-pod-autoscaler-downscale-stabilization
CPU_INITIALIZATION_PERIOD = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
METRIC_WINDOW = 15.0  # metrics-server's sample window (its default --metric-resolution)
METRIC_SAMPLES = 15  # points at which the load is read inside one metric window (the CPU rate's average)
LONG_AGO = 1e9  # seconds before t=0 at which the initial pods started
DEFAULT_CPU_UTILIZATION = 80  # the API server's default metric when spec.metrics is empty
# Used by the controller when behavior is unset (convertDesiredReplicasWithRules).
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
SUPPORTED_RESOURCES = ("cpu", "memory")


class HpaSpecError(ValueError):
    """The rendered release cannot be predicted (no HPA, no CPU request, an unsupported metric...)."""


class MetricUnavailable(RuntimeError):
    """The controller could not compute a proposal for a metric (its FailedGet...Metric condition)."""


# --- the HPA spec, as the API server stores it (defaults applied) ----------------------------------------


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # "Pods" | "Percent"
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    policies: tuple[ScalingPolicy, ...]
    select_policy: str = "Max"  # "Max" | "Min" | "Disabled"
    stabilization_window_seconds: int | None = None  # None (scale-down only): the controller's 300 s flag
    tolerance: float | None = None  # per-direction tolerance (HPAConfigurableTolerance); None: 0.1

    @classmethod
    def from_manifest(
        cls, rules: Mapping[str, Any] | None, default: ScalingRules, where: str
    ) -> ScalingRules:
        """API-server defaulting: every unset field of `rules` comes from `default`."""
        if rules is None:
            return default
        policies = default.policies
        if rules.get("policies") is not None:
            policies = tuple(_policy(p, f"{where}.policies[{i}]") for i, p in enumerate(rules["policies"]))
        select = rules.get("selectPolicy", default.select_policy)
        if select not in ("Max", "Min", "Disabled"):
            raise HpaSpecError(f"{where}.selectPolicy must be Max, Min or Disabled, got {select!r}")
        window = rules.get("stabilizationWindowSeconds", default.stabilization_window_seconds)
        tolerance = rules.get("tolerance")
        return cls(
            policies=policies,
            select_policy=select,
            stabilization_window_seconds=None if window is None else int(window),
            tolerance=None if tolerance is None else float(parse_quantity(tolerance)),
        )

    def longest_period(self) -> int:
        return max((p.period_seconds for p in self.policies), default=0)


def _policy(policy: Mapping[str, Any], where: str) -> ScalingPolicy:
    if policy.get("type") not in ("Pods", "Percent"):
        raise HpaSpecError(f"{where}.type must be Pods or Percent, got {policy.get('type')!r}")
    return ScalingPolicy(policy["type"], int(policy["value"]), int(policy["periodSeconds"]))


# The API server's defaults for a behavior that leaves fields out (pkg/apis/autoscaling/v2/defaults.go).
DEFAULT_SCALE_UP = ScalingRules(
    policies=(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)),
    select_policy="Max",
    stabilization_window_seconds=0,
)
DEFAULT_SCALE_DOWN = ScalingRules(policies=(ScalingPolicy("Percent", 100, 15),), select_policy="Max")


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN

    @classmethod
    def from_manifest(cls, behavior: Mapping[str, Any] | None) -> Behavior | None:
        """None when unset. The controller then takes its legacy path, which differs from the defaults above:
        scale-up to at most max(2 x current, 4) per sync, scale-down after the 300 s window, no policies."""
        if behavior is None:
            return None
        return cls(
            ScalingRules.from_manifest(behavior.get("scaleUp"), DEFAULT_SCALE_UP, "behavior.scaleUp"),
            ScalingRules.from_manifest(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN, "behavior.scaleDown"),
        )


@dataclass(frozen=True)
class MetricTarget:
    """A Resource or ContainerResource metric: utilization percent of the request, or an average value."""

    resource: str  # "cpu" | "memory"
    average_utilization: int | None = None
    average_value_milli: int | None = None  # milli-units: millicores, or bytes x 1000
    container: str | None = None  # ContainerResource metrics only

    @property
    def name(self) -> str:
        """The metric's name as the controller words it in its events."""
        scope = "container resource" if self.container else "resource"
        if self.average_utilization is not None:
            return f"{self.resource} {scope} utilization (percentage of request)"
        return f"{self.resource} {scope}"


def _milli(quantity: Any) -> int:
    """Quantity.MilliValue(): milli-units, rounded up."""
    return int((Decimal(parse_quantity(quantity)) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def _metric(spec: Mapping[str, Any], index: int) -> MetricTarget:
    kind = spec.get("type")
    source = {"Resource": spec.get("resource"), "ContainerResource": spec.get("containerResource")}.get(kind)
    if source is None:
        raise HpaSpecError(
            f"metrics[{index}] is of type {kind!r}: the predictor models Resource and ContainerResource "
            f"metrics ({', '.join(SUPPORTED_RESOURCES)}) only"
        )
    if source.get("name") not in SUPPORTED_RESOURCES:
        raise HpaSpecError(f"metrics[{index}] scales on resource {source.get('name')!r}: not modelled")
    target = source.get("target", {})
    if target.get("type") == "Utilization" and target.get("averageUtilization") is not None:
        return MetricTarget(
            source["name"],
            average_utilization=int(target["averageUtilization"]),
            container=source.get("container"),
        )
    if target.get("type") == "AverageValue" and target.get("averageValue") is not None:
        return MetricTarget(
            source["name"],
            average_value_milli=_milli(target["averageValue"]),
            container=source.get("container"),
        )
    raise HpaSpecError(
        f"metrics[{index}].target needs Utilization+averageUtilization or AverageValue+averageValue"
    )


@dataclass(frozen=True)
class HpaSpec:
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricTarget, ...]
    behavior: Behavior | None
    # container name -> resource -> request in milli-units; the first container is the service container.
    container_requests: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    cpu_limit_milli: int | None = None  # the service container's CPU limit (usage cannot exceed it)
    name: str = "hpa"

    @classmethod
    def from_manifests(cls, hpa: Mapping[str, Any], workload: Mapping[str, Any]) -> HpaSpec:
        """From an autoscaling/v2 HPA object and the Deployment/StatefulSet it targets."""
        if hpa.get("apiVersion") != "autoscaling/v2":
            raise HpaSpecError(
                f"HorizontalPodAutoscaler apiVersion is {hpa.get('apiVersion')!r}, expected autoscaling/v2"
            )
        spec = hpa.get("spec", {})
        ref, meta = spec.get("scaleTargetRef", {}), workload.get("metadata", {})
        if (ref.get("kind"), ref.get("name")) != (workload.get("kind"), meta.get("name")):
            raise HpaSpecError(
                f"HPA scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not the workload "
                f"{workload.get('kind')}/{meta.get('name')}"
            )
        metric_specs = spec.get("metrics") or [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION},
                },
            }
        ]
        metrics = tuple(_metric(m, i) for i, m in enumerate(metric_specs))
        pod = workload["spec"]["template"]["spec"]
        # The controller counts restartable (sidecar) init containers with the containers.
        containers = list(pod.get("containers", [])) + [
            c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"
        ]
        requests = {
            c["name"]: {
                r: _milli(q)
                for r, q in c.get("resources", {}).get("requests", {}).items()
                if r in SUPPORTED_RESOURCES
            }
            for c in containers
        }
        main = next((c for c in containers if c["name"] == "model-api"), containers[0])
        limit = main.get("resources", {}).get("limits", {}).get("cpu")
        parsed = cls(
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            metrics=metrics,
            behavior=Behavior.from_manifest(spec.get("behavior")),
            container_requests={main["name"]: requests.pop(main["name"]), **requests},
            cpu_limit_milli=None if limit is None else _milli(limit),
            name=hpa.get("metadata", {}).get("name", "hpa"),
        )
        parsed.check_requests(f"{workload.get('kind')}/{meta.get('name')}")
        return parsed

    @classmethod
    def from_release(cls, objects: Iterable[release.Manifest]) -> HpaSpec:
        """From the rendered release (`release.render(values)`); clear errors when it cannot be predicted."""
        objects = list(objects)
        hpas = release.find(objects, "HorizontalPodAutoscaler")
        if not hpas:
            raise HpaSpecError(
                "the rendered release has no HorizontalPodAutoscaler: these values do not enable autoscaling "
                "(set autoscaling.enabled: true, e.g. with values-prod.yaml)"
            )
        return cls.from_manifests(release.get(objects, "HorizontalPodAutoscaler"), release.workload(objects))

    def check_requests(self, workload_name: str) -> None:
        """Utilization metrics need a request on every counted container, as in the controller."""
        for metric in self.metrics:
            if metric.average_utilization is None:
                continue
            for container, requests in self.container_requests.items():
                if (metric.container in (None, container)) and metric.resource not in requests:
                    raise HpaSpecError(
                        f"container {container!r} of {workload_name} has no "
                        f"resources.requests.{metric.resource}: "
                        f"the HPA cannot compute {metric.resource} utilization without it"
                    )

    def request_milli(self, metric: MetricTarget) -> int:
        """The request a pod contributes to `metric`'s utilization (its container's, or the pod's sum)."""
        if metric.container:
            if metric.container not in self.container_requests:
                raise HpaSpecError(
                    f"ContainerResource metric names container {metric.container!r}, not in the pod"
                )
            return self.container_requests[metric.container].get(metric.resource, 0)
        return sum(r.get(metric.resource, 0) for r in self.container_requests.values())

    @property
    def cpu_target(self) -> int | None:
        return next((m.average_utilization for m in self.metrics if m.resource == "cpu"), None)

    @property
    def main_container(self) -> str:
        return next(iter(self.container_requests), "model-api")


# --- replica_calculator.go ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerances:
    scale_down: float = TOLERANCE
    scale_up: float = TOLERANCE

    def is_within(self, usage_ratio: float) -> bool:
        return (1.0 - self.scale_down) <= usage_ratio <= (1.0 + self.scale_up)


@dataclass(frozen=True)
class PodSample:
    """One pod as the replica calculator sees it (deleted and failed pods are left out by the caller)."""

    name: str
    request: int  # milli-units of the metric's resource
    usage: int | None  # milli-units; None: metrics-server returned no sample (a "missing" pod)
    unready: bool = False  # pending, or (CPU) not ready / inside the initialization window


@dataclass(frozen=True)
class Proposal:
    replicas: int
    utilization: int | None  # integer percent of the request (utilization targets only)
    raw_average: int  # average usage in milli-units over the pods counted


def utilization_ratio(
    usage: Mapping[str, int], requests: Mapping[str, int], target: int
) -> tuple[float, int, int]:
    """GetResourceUtilizationRatio: (ratio, request-weighted utilization in whole percent, raw average)."""
    counted = [name for name in usage if name in requests]
    requests_total = sum(requests[name] for name in counted)
    if requests_total == 0:
        raise MetricUnavailable("no metrics returned matched known pods")
    usage_total = sum(usage[name] for name in counted)
    utilization = usage_total * 100 // requests_total
    return utilization / target, utilization, usage_total // len(counted)


def _group(pods: Sequence[PodSample]) -> tuple[dict[str, int], int, list[PodSample], list[PodSample]]:
    """groupPods: metrics of the ready pods, their count, the unready pods, the pods missing a metric."""
    if not pods:
        raise MetricUnavailable("no pods returned by selector while calculating replica count")
    unready = [p for p in pods if p.unready]
    missing = [p for p in pods if not p.unready and p.usage is None]
    metrics = {p.name: p.usage for p in pods if not p.unready and p.usage is not None}
    if not metrics:
        raise MetricUnavailable("did not receive metrics for targeted pods (pods might be unready)")
    return metrics, len(metrics), unready, missing


def _rebalanced_replicas(
    current: int, ratio: float, new_ratio: float, counted: int, tolerances: Tolerances
) -> int:
    """The second pass: no change when the new ratio is within tolerance or any direction flips."""
    if tolerances.is_within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    replicas = math.ceil(new_ratio * counted)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def resource_replicas(
    current: int, pods: Sequence[PodSample], target_utilization: int, tolerances: Tolerances = Tolerances()
) -> Proposal:
    """GetResourceReplicas: the proposal for a utilization target (percent of the request)."""
    requests = {p.name: p.request for p in pods}

    def ratio_of(usage: Mapping[str, int]) -> float:
        return utilization_ratio(usage, requests, target_utilization)[0]

    # scale-down: a missing pod uses all its request (or the target, when the target is above 100 %)
    fallback = max(100, target_utilization)
    replicas, ready_usage = _replicas_for(
        current, pods, ratio_of, lambda pod: requests[pod.name] * fallback // 100, tolerances
    )
    _, utilization, raw = utilization_ratio(ready_usage, requests, target_utilization)
    return Proposal(replicas, utilization, raw)


def raw_resource_replicas(
    current: int, pods: Sequence[PodSample], target_value: int, tolerances: Tolerances = Tolerances()
) -> Proposal:
    """calcPlainMetricReplicas: the proposal for an average-value target (milli-units per pod)."""

    def ratio_of(usage: Mapping[str, int]) -> float:
        return sum(usage.values()) / (target_value * len(usage))

    # scale-down: a missing pod uses exactly the target
    replicas, ready_usage = _replicas_for(current, pods, ratio_of, lambda pod: target_value, tolerances)
    return Proposal(replicas, None, sum(ready_usage.values()) // len(ready_usage))


def _replicas_for(
    current: int,
    pods: Sequence[PodSample],
    ratio_of: Callable[[Mapping[str, int]], float],
    missing_usage_on_scale_down: Callable[[PodSample], int],
    tolerances: Tolerances,
) -> tuple[int, dict[str, int]]:
    """What both calculators share: the proposal from the ready pods' usage, then, when pods are unready
    or missing a metric, the second pass with their assumed usage. Returns (replicas, ready pods' usage)."""
    ready_usage, ready_count, unready, missing = _group(pods)
    ratio = ratio_of(ready_usage)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        replicas = current if tolerances.is_within(ratio) else math.ceil(ratio * ready_count)
        return replicas, ready_usage
    assumed = dict(ready_usage)
    if missing and ratio < 1.0:
        assumed.update({p.name: missing_usage_on_scale_down(p) for p in missing})
    elif missing and ratio > 1.0:
        assumed.update({p.name: 0 for p in missing})  # scale-up: a missing pod uses nothing
    if scale_up_with_unready:
        assumed.update({p.name: 0 for p in unready})  # scale-up: an unready pod uses nothing
    replicas = _rebalanced_replicas(current, ratio, ratio_of(assumed), len(assumed), tolerances)
    return replicas, ready_usage


def propose(
    metric: MetricTarget, current: int, pods: Sequence[PodSample], tolerances: Tolerances = Tolerances()
) -> Proposal | MetricUnavailable:
    """The metric's proposal, or why there is none (the controller then reports ScalingActive False)."""
    try:
        if metric.average_utilization is not None:
            return resource_replicas(current, pods, metric.average_utilization, tolerances)
        assert metric.average_value_milli is not None  # _metric() guarantees one of the two targets
        return raw_resource_replicas(current, pods, metric.average_value_milli, tolerances)
    except MetricUnavailable as exc:
        return exc


# --- horizontal.go: the controller's per-HPA state and normalization ---------------------------------------


@dataclass(frozen=True)
class Decision:
    desired: int
    rescale_reason: str = ""  # the SuccessfulRescale event's reason, when the sync scales
    able_to_scale: str = "ReadyForNewScale"  # AbleToScale condition reason (…Stabilized when held back)
    scaling_limited: str = "DesiredWithinRange"  # ScalingLimited reason (ScaleUpLimit, TooManyReplicas, …)
    metric_error: str = ""  # ScalingActive False: why no replica count could be computed

    def describe(self, current: int) -> str:
        """One line for a timeline: what the sync did and what held it back."""
        if self.metric_error:
            return f"ScalingActive=False: {self.metric_error}"
        notes = [
            n
            for n in (self.able_to_scale, self.scaling_limited)
            if n not in ("ReadyForNewScale", "DesiredWithinRange")
        ]
        head = self.rescale_reason if self.desired != current else ""
        return "; ".join([head, *notes] if head else notes)


class Controller:
    """The HPA controller's memory for one HPA: unstabilized recommendations and scale events (by time)."""

    def __init__(self, spec: HpaSpec, downscale_stabilization: int = DOWNSCALE_STABILIZATION) -> None:
        self.spec = spec
        self.downscale_stabilization = downscale_stabilization
        self.recommendations: list[tuple[float, int]] = []
        self.scale_up_events: list[tuple[float, int]] = []  # (time, replicas added)
        self.scale_down_events: list[tuple[float, int]] = []  # (time, replicas removed)

    def tolerances(self) -> Tolerances:
        behavior = self.spec.behavior
        if behavior is None:
            return Tolerances()
        down, up = behavior.scale_down.tolerance, behavior.scale_up.tolerance
        return Tolerances(TOLERANCE if down is None else down, TOLERANCE if up is None else up)

    def reconcile(
        self, now: float, current: int, proposals: Sequence[Proposal | MetricUnavailable]
    ) -> Decision:
        """reconcileAutoscaler from the metric proposals on: bounds, max over metrics, normalization."""
        spec = self.spec
        if not self.recommendations:
            self.recommendations.append((now, current))  # recordInitialRecommendation
        if current == 0 and spec.min_replicas != 0:
            return Decision(0, metric_error="ScalingDisabled: the replica count of the target is zero")
        if current > spec.max_replicas:
            decision = Decision(spec.max_replicas, "Current number of replicas above Spec.MaxReplicas")
        elif current < spec.min_replicas:
            decision = Decision(spec.min_replicas, "Current number of replicas below Spec.MinReplicas")
        else:
            decision = self._from_metrics(now, current, proposals)
        if decision.desired != current and not decision.metric_error:
            self._store_scale_event(now, current, decision.desired)
        return decision

    def _from_metrics(
        self, now: float, current: int, proposals: Sequence[Proposal | MetricUnavailable]
    ) -> Decision:
        valid = [(i, p) for i, p in enumerate(proposals) if isinstance(p, Proposal)]
        errors = [p for p in proposals if isinstance(p, MetricUnavailable)]
        metric_desired = max((p.replicas for _, p in valid), default=0)
        # All metrics failed, or some failed while the others would scale down: the controller does nothing.
        if not valid or (errors and metric_desired < current):
            return Decision(current, metric_error=f"FailedGetResourceMetric: {errors[0]}")
        leader = next(i for i, p in valid if p.replicas == metric_desired)
        desired = max(0, metric_desired)
        reason = ""
        if desired > current:
            reason = f"{self.spec.metrics[leader].name} above target"
        elif desired < current:
            reason = "All metrics below target"
        if self.spec.behavior is None:
            return self._normalize(now, current, desired, reason)
        return self._normalize_with_behavior(now, current, desired, reason)

    # behavior unset: normalizeDesiredReplicas
    def _normalize(self, now: float, current: int, desired: int, reason: str) -> Decision:
        cutoff = now - self.downscale_stabilization
        stabilized = max([desired] + [r for ts, r in self.recommendations if not ts < cutoff])
        self._record(now, desired, lambda ts: ts < cutoff)
        able = "ScaleDownStabilized" if stabilized != desired else "ReadyForNewScale"
        scale_up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
        if self.spec.max_replicas > scale_up_limit:
            maximum, limited = scale_up_limit, "ScaleUpLimit"
        else:
            maximum, limited = self.spec.max_replicas, "TooManyReplicas"
        if stabilized < self.spec.min_replicas:
            return Decision(self.spec.min_replicas, reason, able, "TooFewReplicas")
        if stabilized > maximum:
            return Decision(maximum, reason, able, limited)
        return Decision(stabilized, reason, able)

    # behavior set: normalizeDesiredReplicasWithBehaviors
    def _normalize_with_behavior(self, now: float, current: int, desired: int, reason: str) -> Decision:
        behavior = self.spec.behavior
        assert behavior is not None
        up_window = behavior.scale_up.stabilization_window_seconds or 0
        down_window = behavior.scale_down.stabilization_window_seconds
        down_window = self.downscale_stabilization if down_window is None else down_window
        up_cutoff, down_cutoff = now - up_window, now - down_window
        up_recommendation = min([desired] + [r for ts, r in self.recommendations if ts > up_cutoff])
        down_recommendation = max([desired] + [r for ts, r in self.recommendations if ts > down_cutoff])
        stabilized = min(max(current, up_recommendation), down_recommendation)
        self._record(now, desired, lambda ts: ts < up_cutoff and ts < down_cutoff)
        able = "ReadyForNewScale"
        if stabilized != desired:
            able = "ScaleUpStabilized" if desired >= current else "ScaleDownStabilized"
        if stabilized > current:
            limit = max(current, self._scale_limit(now, current, behavior.scale_up, up=True))
            maximum, limited = (
                (limit, "ScaleUpLimit")
                if self.spec.max_replicas > limit
                else (self.spec.max_replicas, "TooManyReplicas")
            )
            if stabilized > maximum:
                return Decision(maximum, reason, able, limited)
        elif stabilized < current:
            limit = min(current, self._scale_limit(now, current, behavior.scale_down, up=False))
            minimum, limited = (
                (limit, "ScaleDownLimit")
                if self.spec.min_replicas < limit
                else (self.spec.min_replicas, "TooFewReplicas")
            )
            if stabilized < minimum:
                return Decision(minimum, reason, able, limited)
        return Decision(stabilized, reason, able)

    def _record(self, now: float, desired: int, is_old: Any) -> None:
        """Keep the unstabilized recommendation, reusing an outdated slot as the controller does."""
        old = [i for i, (ts, _) in enumerate(self.recommendations) if is_old(ts)]
        if old:
            self.recommendations[old[-1]] = (now, desired)
        else:
            self.recommendations.append((now, desired))

    def _scale_limit(self, now: float, current: int, rules: ScalingRules, *, up: bool) -> int:
        """calculateScale{Up,Down}Limit…: the replica bound the policies allow, from the period's start."""
        if rules.select_policy == "Disabled":
            return current
        proposals = []
        for policy in rules.policies:
            cutoff = now - policy.period_seconds
            added = sum(n for ts, n in self.scale_up_events if ts > cutoff)
            removed = sum(n for ts, n in self.scale_down_events if ts > cutoff)
            period_start = current - added + removed
            if policy.type == "Pods":
                proposals.append(period_start + policy.value if up else period_start - policy.value)
            elif up:
                proposals.append(math.ceil(period_start * (1 + policy.value / 100)))
            else:
                proposals.append(int(period_start * (1 - policy.value / 100)))
        # "Max" picks the policy allowing the biggest change: the highest bound up, the lowest bound down.
        biggest_change = rules.select_policy != "Min"
        return max(proposals) if biggest_change == up else min(proposals)

    def _store_scale_event(self, now: float, previous: int, new: int) -> None:
        behavior = self.spec.behavior
        if behavior is None:
            return  # the legacy path keeps no events
        rules, events = (
            (behavior.scale_up, self.scale_up_events)
            if new > previous
            else (behavior.scale_down, self.scale_down_events)
        )
        cutoff = now - rules.longest_period()
        outdated = [i for i, (ts, _) in enumerate(events) if ts < cutoff]
        event = (now, abs(new - previous))
        if outdated:
            events[outdated[-1]] = event
        else:
            events.append(event)


# --- the simulation -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncRow:
    t: float
    rps: float
    ready_replicas: int
    replicas: int
    desired: int
    utilization: int | None
    target: int | None
    reason: str
    pod_cpu_millicores: int  # the CPU one ready pod uses (what `kubectl top pods` would show)

    CSV_COLUMNS = (
        "t",
        "rps",
        "replicas",
        "ready_replicas",
        "desired",
        "utilization",
        "target",
        "pod_cpu_millicores",
        "reason",
    )

    def as_csv_row(self) -> dict[str, Any]:
        return {
            column: "" if getattr(self, column) is None else getattr(self, column)
            for column in self.CSV_COLUMNS
        }


@dataclass
class SimulatedPod:
    name: str
    started: float
    ready_at: float


def validate_load(
    load: Sequence[tuple[float, float]], row_name: Callable[[int], str] = "load row {}".format
) -> list[tuple[float, float]]:
    """The load curve as (t, rps) floats; a clear error for an empty curve, negative values or unordered t.

    `row_name(i)` names row i in messages (the CLI names CSV lines).
    """
    if not load:
        raise ValueError("the load curve is empty: give at least one (t, rps) row")
    rows = [(float(t), float(rps)) for t, rps in load]
    for index, (t, rps) in enumerate(rows):
        i = row_name(index)
        if not (math.isfinite(t) and math.isfinite(rps)):
            raise ValueError(f"{i}: t and rps must be finite numbers, got t={t}, rps={rps}")
        if t < 0:
            raise ValueError(f"{i}: t must be >= 0 seconds, got {t}")
        if rps < 0:
            raise ValueError(f"{i}: rps must be >= 0, got {rps}")
        if index and t <= rows[index - 1][0]:
            raise ValueError(f"{i}: t must increase strictly, got {t} after {rows[index - 1][0]}")
    return rows


def rps_at(load: Sequence[tuple[float, float]], t: float) -> float:
    """The step held at time t (0 before the first row); `load` is sorted by t (validate_load)."""
    index = bisect.bisect_right(load, (t, math.inf)) - 1  # the last row starting at or before t
    return load[index][1] if index >= 0 else 0.0


def windowed_rps_per_pod(
    load: Sequence[tuple[float, float]], pods: Sequence[SimulatedPod], now: float, window: float
) -> float:
    """A ready pod's requests/s as metrics-server reports it at `now`: the mean over the `window` seconds
    before (a CPU rate from two cumulative readings), each second's load shared by the pods ready then."""
    if window <= 0:
        instants = [now]
    else:
        instants = [now - window + (i + 1) * window / METRIC_SAMPLES for i in range(METRIC_SAMPLES)]
    shares = []
    for instant in instants:
        ready = sum(1 for p in pods if p.ready_at <= instant)
        shares.append(rps_at(load, instant) / ready if ready else 0.0)
    return sum(shares) / len(shares)


def predict(
    spec: HpaSpec,
    load: Sequence[tuple[float, float]],
    cpu_ms_per_request: float,
    *,
    ready_delay: float = 30,
    duration: float | None = None,
    idle_millicores: float = 0,
    memory_bytes_per_pod: float | None = None,
    initial_replicas: int | None = None,
    sync_period: float = SYNC_PERIOD,
    metric_window: float = METRIC_WINDOW,
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
) -> list[SyncRow]:
    """Replay `load` through the controller: a row per sync, t=0 to `duration` (default last step + 600 s)."""
    rows = validate_load(load)
    for label, value in (
        ("cpu_ms_per_request", cpu_ms_per_request),
        ("ready_delay", ready_delay),
        ("idle_millicores", idle_millicores),
        ("sync_period", sync_period),
    ):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{label} must be a finite number >= 0, got {value}")
    if sync_period == 0:
        raise ValueError("sync_period must be > 0")
    if memory_bytes_per_pod is None and any(m.resource == "memory" for m in spec.metrics):
        raise ValueError(
            "the HPA also scales on memory: give memory_bytes_per_pod (the pod's steady memory use)"
        )
    end = rows[-1][0] + 600 if duration is None else duration
    controller = Controller(spec)
    pods: list[SimulatedPod] = []
    serial = 0

    def start_pods(count: int, now: float, delay: float) -> None:
        nonlocal serial
        for _ in range(count):
            serial += 1
            pods.append(SimulatedPod(f"pod-{serial}", now, now + delay))

    # The initial pods have run for long: ready, past their CPU initialization period.
    start_pods(spec.min_replicas if initial_replicas is None else initial_replicas, -LONG_AGO, 0.0)
    timeline = []
    for step in range(int(end // sync_period) + 1):
        now = step * sync_period
        rps = rps_at(rows, now)
        ready = [p for p in pods if p.ready_at <= now]
        per_pod_cpu = _cpu_usage(
            spec, windowed_rps_per_pod(rows, pods, now, metric_window), cpu_ms_per_request, idle_millicores
        )
        idle_cpu = _cpu_usage(spec, 0.0, cpu_ms_per_request, idle_millicores)
        proposals: list[Proposal | MetricUnavailable] = []
        for metric in spec.metrics:
            samples = [
                PodSample(
                    p.name,
                    spec.request_milli(metric),
                    _usage(
                        spec, metric, per_pod_cpu if p.ready_at <= now else idle_cpu, memory_bytes_per_pod
                    ),
                    # only CPU samples are held back while a pod starts (groupPods)
                    metric.resource == "cpu"
                    and (
                        p.ready_at > now
                        or (now < p.started + cpu_initialization_period and now < p.ready_at + metric_window)
                    ),
                )
                for p in pods
            ]
            proposals.append(propose(metric, len(pods), samples, controller.tolerances()))
        current = len(pods)
        decision = controller.reconcile(now, current, proposals)
        timeline.append(
            SyncRow(
                t=now,
                rps=rps,
                ready_replicas=len(ready),
                replicas=current,
                desired=decision.desired,
                utilization=_cpu_utilization(spec, proposals),
                target=spec.cpu_target,
                reason=decision.describe(current),
                pod_cpu_millicores=per_pod_cpu,
            )
        )
        if decision.desired > current:
            start_pods(decision.desired - current, now, ready_delay)
        elif decision.desired < current:
            # ReplicaSet deletion ranking: not-ready pods first, then the most recently ready.
            pods.sort(key=lambda p: (p.ready_at <= now, -p.ready_at))
            del pods[: current - decision.desired]
    return timeline


def _cpu_usage(spec: HpaSpec, rps_per_pod: float, cpu_ms_per_request: float, idle_millicores: float) -> int:
    """A pod's CPU in millicores: ms of CPU per request x requests per second, capped by a CPU limit."""
    usage = math.ceil(rps_per_pod * cpu_ms_per_request + idle_millicores)
    return usage if spec.cpu_limit_milli is None else min(usage, spec.cpu_limit_milli)


def _usage(spec: HpaSpec, metric: MetricTarget, cpu: int, memory_bytes: float | None) -> int:
    if metric.resource == "memory":
        return math.ceil((memory_bytes or 0) * 1000)
    if metric.container and metric.container != spec.main_container:
        return 0  # the model puts the request work on the service container
    return cpu


def _cpu_utilization(spec: HpaSpec, proposals: Sequence[Proposal | MetricUnavailable]) -> int | None:
    for metric, proposal in zip(spec.metrics, proposals, strict=True):
        if metric.resource == "cpu" and isinstance(proposal, Proposal):
            if proposal.utilization is not None:
                return proposal.utilization
            return proposal.raw_average * 100 // max(1, spec.request_milli(metric))
    return None


def first_time_at(timeline: Sequence[SyncRow], replicas: int) -> float | None:
    """When the workload first had `replicas` ready pods (None if never)."""
    return next((row.t for row in timeline if row.ready_replicas >= replicas), None)
