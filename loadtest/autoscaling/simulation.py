"""The autoscaler replayed on a load curve: `predict(spec, load, cpu_ms_per_request)` -> a `SyncRow` per sync.

``predict(spec, load, cpu_ms_per_request, *, ready_delay=30, duration=None, idle_millicores=0,
memory_bytes_per_pod=None, initial_replicas=None)`` replays ``load`` (``(t seconds, rps)`` steps, each held
until the next row; 0 rps before the first) through the controller (controller.py) every 15 s.
``SyncRow.replicas`` is the workload's replica count when the sync starts (pods started count at once),
``desired`` the count the sync sets, ``utilization`` the CPU utilization the HPA reports (integer percent
of the request, ``None`` when no ready pod has a metric), ``target`` the CPU target percent.

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

Custom metrics (Pods, Object, External: the service's requests/s and requests in flight) are read through
the Prometheus pipeline of pipeline.py (scrape interval, rate() window; a new pod reports zero traffic
until it is Ready, and no rate until it has two samples); in-flight needs ``latency_ms``. A spec made from
a KEDA ScaledObject also replays KEDA's own step: every polling interval, at 0 replicas an active trigger
(value above its activationThreshold) scales to max(minReplicaCount, 1), and with minReplicaCount 0 the
target goes to 0 a cooldownPeriod after the last active poll. Requests that arrive while no pod is Ready
are not served, so no pod counts them: a trigger on the service's own series cannot wake a target at zero
(the replay shows it), only one on the offered load can (signal ``offered_rps``: the chart's
``requests-arriving`` trigger, an ingress, gateway or mesh counter scraped like the pods' series). From zero,
the workload wakes at the first KEDA poll whose rate() of that counter is above the activationThreshold:
the load's rise + the scrape and rate() delays, rounded up to the next poll, then a pod's start-to-ready.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.autoscaling.controller import CPU_INITIALIZATION_PERIOD, SYNC_PERIOD, Controller
from loadtest.autoscaling.pipeline import DEFAULT_PIPELINE, MetricPipeline, ServiceCosts
from loadtest.autoscaling.replica_calculator import (
    MetricUnavailable,
    Observed,
    PodSample,
    Proposal,
    propose,
)
from loadtest.autoscaling.spec import HpaSpec, MetricTarget

METRIC_WINDOW = 15.0  # metrics-server's sample window (its default --metric-resolution)
METRIC_SAMPLES = 15  # points at which the load is read inside one metric window (the CPU rate's average)
LONG_AGO = 1e9  # seconds before t=0 at which the initial pods started


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
    metrics: str = ""  # what the custom metrics read at this sync, e.g. "s0-prometheus 41.2"

    CSV_COLUMNS = (
        "t",
        "rps",
        "replicas",
        "ready_replicas",
        "desired",
        "utilization",
        "target",
        "pod_cpu_millicores",
        "metrics",
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
    deleted: float = math.inf


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
    metric_window: float | None = None,
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
    latency_ms: float | None = None,
    pipeline: MetricPipeline = DEFAULT_PIPELINE,
    capacity_millicores: float = math.inf,
    history: list[SimulatedPod] | None = None,
) -> list[SyncRow]:
    """Replay `load` through the controller: a row per sync, t=0 to `duration` (default last step + 600 s).

    `metric_window` overrides the pipeline's metrics-server window; `history`, when given, receives every
    pod that ever ran (start, Ready and deletion times) for accounting between syncs."""
    rows = validate_load(load)
    _check_workload_model(
        spec, cpu_ms_per_request, ready_delay, idle_millicores, sync_period, memory_bytes_per_pod
    )
    if metric_window is not None:
        pipeline = dataclasses.replace(pipeline, metrics_server_window=metric_window)
    costs = ServiceCosts(
        cpu_ms_per_request,
        latency_ms,
        capacity_millicores=capacity_millicores,
        idle_millicores=idle_millicores,
    )
    if any(m.signal == "in_flight" for m in spec.metrics):
        costs.in_flight(0.0)  # a clear error now when latency_ms is missing
    end = rows[-1][0] + 600 if duration is None else duration
    controller = Controller(spec)
    keda = KedaStep(spec) if spec.keda is not None else None
    # The initial pods have run for long: ready, past their CPU initialization period.
    pods = ReplicaSet(history=history if history is not None else [])
    if initial_replicas is None:
        initial_replicas = keda.initial_replicas(rows) if keda else spec.min_replicas
    pods.start(initial_replicas, -LONG_AGO, 0.0)
    metrics_view = CustomMetrics(rows, pipeline, costs)
    timeline = []
    for step in range(int(end // sync_period) + 1):
        now = step * sync_period
        per_pod_cpu = _cpu_usage(
            spec,
            windowed_rps_per_pod(rows, pods.pods, now, pipeline.metrics_server_window),
            cpu_ms_per_request,
            idle_millicores,
            capacity_millicores,
        )
        observed = MetricsView(
            spec,
            busy_cpu=per_pod_cpu,
            idle_cpu=_cpu_usage(spec, 0.0, cpu_ms_per_request, idle_millicores),
            memory_bytes=memory_bytes_per_pod,
            metric_window=pipeline.metrics_server_window,
            cpu_initialization_period=cpu_initialization_period,
        )
        seen = [
            metrics_view.observe(m, pods.pods, now) if m.is_custom else observed.samples(m, pods.pods, now)
            for m in spec.metrics
        ]
        current = len(pods)
        keda_replicas = keda.poll(now, current, seen) if keda else None
        if keda_replicas is not None:
            desired, reason = keda_replicas
            proposals: list[Proposal | MetricUnavailable] = []
        else:
            proposals = [
                propose(m, current, o, controller.tolerances())
                for m, o in zip(spec.metrics, seen, strict=True)
            ]
            decision = controller.reconcile(now, current, proposals)
            desired, reason = decision.desired, decision.describe(current)
        timeline.append(
            SyncRow(
                t=now,
                rps=rps_at(rows, now),
                ready_replicas=pods.ready_count(now),
                replicas=current,
                desired=desired,
                utilization=_cpu_utilization(spec, proposals) if proposals else None,
                target=spec.cpu_target,
                reason=reason,
                pod_cpu_millicores=per_pod_cpu,
                metrics=_describe_custom(spec, seen),
            )
        )
        pods.scale(desired, now, ready_delay)
    pods.retire_all(end + sync_period)
    return timeline


class CustomMetrics:
    """The Prometheus pipeline's view of the service's own series at one sync (pipeline.py)."""

    def __init__(
        self, load: Sequence[tuple[float, float]], pipeline: MetricPipeline, costs: ServiceCosts
    ) -> None:
        self.load, self.pipeline, self.costs = load, pipeline, costs

    def _pod_rps(self, pod: SimulatedPod, pods: Sequence[SimulatedPod], instant: float) -> float:
        if not (pod.ready_at <= instant < pod.deleted):
            return 0.0
        ready = sum(1 for p in pods if p.ready_at <= instant < p.deleted)
        return rps_at(self.load, instant) / ready

    def _pod_served(self, pod: SimulatedPod, pods: Sequence[SimulatedPod], instant: float) -> float:
        """Requests/s the pod completes (what its counter counts): its share, at most its throughput."""
        return min(self._pod_rps(pod, pods, instant), self.costs.throughput)

    def pod_value(
        self, metric: MetricTarget, pod: SimulatedPod, pods: Sequence[SimulatedPod], now: float
    ) -> float | None:
        """The pod's series as the query reads it at `now`; None while it has too few samples."""
        newest = now - self.pipeline.sample_age
        if metric.signal == "in_flight":
            if pod.started > newest:
                return None
            return self.costs.in_flight(self._pod_rps(pod, pods, newest))
        span = self.pipeline.rate_span(metric.rate_window)
        first = max(newest - span, pod.started)
        if newest - first < self.pipeline.scrape_interval:  # fewer than two samples inside the window
            return None
        instants = [first + (i + 1) * (newest - first) / METRIC_SAMPLES for i in range(METRIC_SAMPLES)]
        return sum(self._pod_served(pod, pods, t) for t in instants) / len(instants)

    def offered(self, metric: MetricTarget, now: float) -> float:
        """Requests/s arriving at the Service (an ingress counter), averaged like a rate()."""
        newest = now - self.pipeline.sample_age
        span = self.pipeline.rate_span(metric.rate_window)
        instants = [newest - span + (i + 1) * span / METRIC_SAMPLES for i in range(METRIC_SAMPLES)]
        return sum(rps_at(self.load, t) for t in instants) / len(instants)

    def observe(self, metric: MetricTarget, pods: Sequence[SimulatedPod], now: float) -> Observed:
        ready = sum(1 for p in pods if p.ready_at <= now)
        if metric.signal == "offered_rps":
            return Observed(total_milli=math.ceil(self.offered(metric, now) * 1000), ready_pods=ready)
        values = {p.name: self.pod_value(metric, p, pods, now) for p in pods}
        if metric.source == "Pods":
            samples = [
                PodSample(name, 0, None if v is None else math.ceil(v * 1000)) for name, v in values.items()
            ]
            return Observed(pods=samples, ready_pods=ready)
        # sum() over the pods' series; an empty result reads 0 (KEDA's ignoreNullValues default)
        total = sum(v for v in values.values() if v is not None)
        return Observed(total_milli=math.ceil(total * 1000), ready_pods=ready)


class KedaStep:
    """KEDA's operator for one ScaledObject: the 0 <-> 1 step around the HPA it made (spec.KedaScaling)."""

    def __init__(self, spec: HpaSpec) -> None:
        assert spec.keda is not None
        self.spec, self.keda = spec, spec.keda
        self.next_poll = 0.0
        self.last_active = 0.0  # the cooldown counts from the operator's first poll

    def initial_replicas(self, load: Sequence[tuple[float, float]]) -> int:
        """Scaled to zero before an idle start when it may be; otherwise the HPA's minimum."""
        if self.keda.min_replica_count == 0 and rps_at(load, 0.0) == 0:
            return 0
        return self.spec.min_replicas

    def _active(self, seen: Sequence[Sequence[PodSample] | Observed]) -> bool:
        for index, (metric, observed) in enumerate(zip(self.spec.metrics, seen, strict=True)):
            if not metric.is_custom or not isinstance(observed, Observed):
                continue
            threshold = (
                self.keda.activation_thresholds[index] if index < len(self.keda.activation_thresholds) else 0
            )
            if (observed.total_milli or 0) / 1000 > threshold:
                return True
        return False

    def poll(
        self, now: float, current: int, seen: Sequence[Sequence[PodSample] | Observed]
    ) -> tuple[int, str] | None:
        """(replicas, reason) when KEDA itself scales at this sync; None leaves the sync to the HPA."""
        if now + 1e-9 < self.next_poll:
            return (0, "KEDA: scaled to zero") if current == 0 else None
        self.next_poll = now + self.keda.polling_interval
        active = self._active(seen)
        if active:
            self.last_active = now
        if current == 0:
            if active:
                return max(self.keda.min_replica_count, 1), "KEDA: trigger active, scaling from zero"
            return 0, "KEDA: scaled to zero"
        idle_for = now - self.last_active
        if self.keda.min_replica_count == 0 and not active and idle_for >= self.keda.cooldown_period:
            return 0, f"KEDA: no trigger active for {self.keda.cooldown_period:g} s, scaling to zero"
        return None


def _describe_custom(spec: HpaSpec, seen: Sequence[Sequence[PodSample] | Observed]) -> str:
    parts = []
    for metric, observed in zip(spec.metrics, seen, strict=True):
        if not metric.is_custom or not isinstance(observed, Observed):
            continue
        if observed.total_milli is not None:
            parts.append(f"{metric.metric_name} {observed.total_milli / 1000:.1f}")
        else:
            values = [p.usage for p in observed.pods if p.usage is not None]
            average = sum(values) / len(values) / 1000 if values else math.nan
            parts.append(f"{metric.metric_name} {average:.1f}/pod")
    return "; ".join(parts)


def _check_workload_model(
    spec: HpaSpec,
    cpu_ms_per_request: float,
    ready_delay: float,
    idle_millicores: float,
    sync_period: float,
    memory_bytes_per_pod: float | None,
) -> None:
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


@dataclass
class ReplicaSet:
    """The workload's pods: started at once when the HPA scales up, removed in the ReplicaSet's order."""

    pods: list[SimulatedPod] = field(default_factory=list)
    serial: int = 0
    history: list[SimulatedPod] = field(default_factory=list)  # every pod ever started

    def __len__(self) -> int:
        return len(self.pods)

    def start(self, count: int, now: float, ready_delay: float) -> None:
        for _ in range(count):
            self.serial += 1
            pod = SimulatedPod(f"pod-{self.serial}", now, now + ready_delay)
            self.pods.append(pod)
            self.history.append(pod)

    def retire_all(self, now: float) -> None:
        """The end of the replay: pods still running stop counting here."""
        for pod in self.pods:
            pod.deleted = min(pod.deleted, now)

    def ready_count(self, now: float) -> int:
        return sum(1 for p in self.pods if p.ready_at <= now)

    def scale(self, desired: int, now: float, ready_delay: float) -> None:
        current = len(self.pods)
        if desired > current:
            self.start(desired - current, now, ready_delay)
        elif desired < current:
            # ReplicaSet deletion ranking: not-ready pods first, then the most recently ready.
            self.pods.sort(key=lambda p: (p.ready_at <= now, -p.ready_at))
            for pod in self.pods[: current - desired]:
                pod.deleted = now
            del self.pods[: current - desired]


@dataclass(frozen=True)
class MetricsView:
    """What the replica calculator reads for each pod at one sync: metrics-server's usage, and whether the
    controller holds the pod's sample back (only CPU samples, while the pod starts: groupPods)."""

    spec: HpaSpec
    busy_cpu: int  # a ready pod's CPU, millicores
    idle_cpu: int  # a not-yet-ready pod's CPU (it gets no traffic)
    memory_bytes: float | None
    metric_window: float
    cpu_initialization_period: float

    def samples(self, metric: MetricTarget, pods: Sequence[SimulatedPod], now: float) -> list[PodSample]:
        return [
            PodSample(
                p.name,
                self.spec.request_milli(metric),
                _usage(
                    self.spec,
                    metric,
                    self.busy_cpu if p.ready_at <= now else self.idle_cpu,
                    self.memory_bytes,
                ),
                metric.resource == "cpu" and self._cpu_held_back(p, now),
            )
            for p in pods
        ]

    def _cpu_held_back(self, pod: SimulatedPod, now: float) -> bool:
        return pod.ready_at > now or (
            now < pod.started + self.cpu_initialization_period and now < pod.ready_at + self.metric_window
        )


def _cpu_usage(
    spec: HpaSpec,
    rps_per_pod: float,
    cpu_ms_per_request: float,
    idle_millicores: float,
    capacity_millicores: float = math.inf,
) -> int:
    """A pod's CPU in millicores: ms of CPU per request x requests per second, capped by a CPU limit and
    by what the pod can use at all (`capacity_millicores`: one core for the single worker process)."""
    usage = min(math.ceil(rps_per_pod * cpu_ms_per_request + idle_millicores), capacity_millicores)
    return int(usage if spec.cpu_limit_milli is None else min(usage, spec.cpu_limit_milli))


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


def write_syncs_csv(path: Path, timeline: Sequence[SyncRow]) -> None:
    """Every sync as a CSV row (columns: SyncRow.CSV_COLUMNS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SyncRow.CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(row.as_csv_row() for row in timeline)
