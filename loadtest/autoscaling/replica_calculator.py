"""The replica calculator (kube-controller-manager's `replica_calculator.go`): one metric's proposal.

``resource_replicas`` is GetResourceReplicas (a utilization target, percent of the request),
``raw_resource_replicas`` is calcPlainMetricReplicas (an average-value target, and GetMetricReplicas for a
Pods metric): the proposal from the ready pods' usage, then the second pass that assumes a usage for
unready pods and pods missing a metric, with the tolerance band (0.9 <= ratio <= 1.1 by default) inside
which nothing changes. Which pods are "unready" is the caller's (groupPods): for CPU, pending pods and pods
not ready or starting; for every other metric only pending pods, so a Running pod that is not Ready yet is
averaged in with the value it reports. ``total_replicas`` is GetObjectMetricReplicas and
GetExternalMetricReplicas (a Value target: the ratio times the *ready* pods, ceil(ratio) from zero), and
``per_pod_replicas`` is GetObjectPerPodMetricReplicas and GetExternalPerPodMetricReplicas (an AverageValue
target, KEDA's default: ceil(total / target), no readiness at all). ``propose`` picks the calculator for a
metric and returns ``MetricUnavailable`` where the controller would report FailedGet...Metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from loadtest.autoscaling.spec import MetricTarget

TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance


class MetricUnavailable(RuntimeError):
    """The controller could not compute a proposal for a metric (its FailedGet...Metric condition)."""


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


def total_replicas(
    current: int, total_milli: int, target_milli: int, ready_pods: int, tolerances: Tolerances = Tolerances()
) -> Proposal:
    """GetObjectMetricReplicas / GetExternalMetricReplicas (getUsageRatioReplicaCount): a Value target."""
    ratio = total_milli / target_milli
    if current == 0:
        replicas = math.ceil(ratio)  # from zero: the tolerance does not apply
    elif tolerances.is_within(ratio):
        replicas = current
    else:
        replicas = math.ceil(ratio * ready_pods)
    return Proposal(replicas, None, total_milli)


def per_pod_replicas(
    status_replicas: int, total_milli: int, target_milli: int, tolerances: Tolerances = Tolerances()
) -> Proposal:
    """GetObjectPerPodMetricReplicas / GetExternalPerPodMetricReplicas: an AverageValue target over the
    replica count in the HPA's status, readiness ignored; the usage reported is ceil(total / replicas)."""
    if status_replicas == 0:
        raise MetricUnavailable("the target has no replicas to average an AverageValue target over")
    replicas = status_replicas
    if not tolerances.is_within(total_milli / (target_milli * status_replicas)):
        replicas = math.ceil(total_milli / target_milli)
    return Proposal(replicas, None, math.ceil(total_milli / status_replicas))


@dataclass(frozen=True)
class Observed:
    """What the metrics APIs return for one metric at one sync: per-pod samples (resource and Pods
    metrics), or the object's / external metric's total (None: the query failed or returned nothing)."""

    pods: Sequence[PodSample] = ()
    total_milli: int | None = None
    ready_pods: int = 0


def propose(
    metric: MetricTarget,
    current: int,
    observed: Sequence[PodSample] | Observed,
    tolerances: Tolerances = Tolerances(),
) -> Proposal | MetricUnavailable:
    """The metric's proposal, or why there is none (the controller then reports ScalingActive False)."""
    seen = observed if isinstance(observed, Observed) else Observed(pods=observed)
    try:
        if metric.source in ("Object", "External"):
            if seen.total_milli is None:
                raise MetricUnavailable(f"unable to get {metric.name}")
            if metric.value_milli is not None:
                return total_replicas(
                    current, seen.total_milli, metric.value_milli, seen.ready_pods, tolerances
                )
            assert metric.average_value_milli is not None
            return per_pod_replicas(current, seen.total_milli, metric.average_value_milli, tolerances)
        if metric.average_utilization is not None:
            return resource_replicas(current, seen.pods, metric.average_utilization, tolerances)
        assert metric.average_value_milli is not None  # _metric() guarantees one of the two targets
        return raw_resource_replicas(current, seen.pods, metric.average_value_milli, tolerances)
    except MetricUnavailable as exc:
        return exc
