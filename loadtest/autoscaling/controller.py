"""The HPA controller's per-HPA state and normalization (kube-controller-manager's `horizontal.go`).

``Controller.reconcile`` is the part of reconcileAutoscaler after the metrics: the min/max bounds, the
highest proposal over the metrics, then normalizeDesiredReplicas (behavior unset: the legacy path, scale-up
to at most max(2 x current, 4) per sync, scale-down after the 300 s window with no rate limit) or
normalizeDesiredReplicasWithBehaviors (stabilization windows and scaling policies over the recorded scale
events). It returns a ``Decision`` carrying the conditions' reasons the controller would set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.autoscaling.replica_calculator import TOLERANCE, MetricUnavailable, Proposal, Tolerances
from loadtest.autoscaling.spec import HpaSpec, ScalingRules

SYNC_PERIOD = 15.0  # --horizontal-pod-autoscaler-sync-period
DOWNSCALE_STABILIZATION = 300  # --horizontal-pod-autoscaler-downscale-stabilization
CPU_INITIALIZATION_PERIOD = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
# Used by the controller when behavior is unset (convertDesiredReplicasWithRules).
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0


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

    def __init__(
        self,
        spec: HpaSpec,
        downscale_stabilization: int = DOWNSCALE_STABILIZATION,
        recommendations: list[tuple[float, int]] | None = None,
    ) -> None:
        """`recommendations`: a history to start from (upstream's tests give one, possibly empty); None:
        the controller's first sync records the current replica count (recordInitialRecommendation)."""
        self.spec = spec
        self.downscale_stabilization = downscale_stabilization
        self.recommendations: list[tuple[float, int]] = list(recommendations or [])
        self._history_given = recommendations is not None
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
        if not self.recommendations and not self._history_given:
            self.recommendations.append((now, current))  # recordInitialRecommendation
        self._history_given = True
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
