"""The HPA replayed on a load curve: `predict(spec, load, cpu_ms_per_request)` -> one `SyncRow` per sync.

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
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtest.autoscaling.controller import CPU_INITIALIZATION_PERIOD, SYNC_PERIOD, Controller
from loadtest.autoscaling.replica_calculator import (
    MetricUnavailable,
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
    _check_workload_model(
        spec, cpu_ms_per_request, ready_delay, idle_millicores, sync_period, memory_bytes_per_pod
    )
    end = rows[-1][0] + 600 if duration is None else duration
    controller = Controller(spec)
    # The initial pods have run for long: ready, past their CPU initialization period.
    pods = ReplicaSet()
    pods.start(spec.min_replicas if initial_replicas is None else initial_replicas, -LONG_AGO, 0.0)
    timeline = []
    for step in range(int(end // sync_period) + 1):
        now = step * sync_period
        per_pod_cpu = _cpu_usage(
            spec,
            windowed_rps_per_pod(rows, pods.pods, now, metric_window),
            cpu_ms_per_request,
            idle_millicores,
        )
        observed = MetricsView(
            spec,
            busy_cpu=per_pod_cpu,
            idle_cpu=_cpu_usage(spec, 0.0, cpu_ms_per_request, idle_millicores),
            memory_bytes=memory_bytes_per_pod,
            metric_window=metric_window,
            cpu_initialization_period=cpu_initialization_period,
        )
        proposals = [
            propose(metric, len(pods), observed.samples(metric, pods.pods, now), controller.tolerances())
            for metric in spec.metrics
        ]
        current = len(pods)
        decision = controller.reconcile(now, current, proposals)
        timeline.append(
            SyncRow(
                t=now,
                rps=rps_at(rows, now),
                ready_replicas=pods.ready_count(now),
                replicas=current,
                desired=decision.desired,
                utilization=_cpu_utilization(spec, proposals),
                target=spec.cpu_target,
                reason=decision.describe(current),
                pod_cpu_millicores=per_pod_cpu,
            )
        )
        pods.scale(decision.desired, now, ready_delay)
    return timeline


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

    def __len__(self) -> int:
        return len(self.pods)

    def start(self, count: int, now: float, ready_delay: float) -> None:
        for _ in range(count):
            self.serial += 1
            self.pods.append(SimulatedPod(f"pod-{self.serial}", now, now + ready_delay))

    def ready_count(self, now: float) -> int:
        return sum(1 for p in self.pods if p.ready_at <= now)

    def scale(self, desired: int, now: float, ready_delay: float) -> None:
        current = len(self.pods)
        if desired > current:
            self.start(desired - current, now, ready_delay)
        elif desired < current:
            # ReplicaSet deletion ranking: not-ready pods first, then the most recently ready.
            self.pods.sort(key=lambda p: (p.ready_at <= now, -p.ready_at))
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


def write_syncs_csv(path: Path, timeline: Sequence[SyncRow]) -> None:
    """Every sync as a CSV row (columns: SyncRow.CSV_COLUMNS)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SyncRow.CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(row.as_csv_row() for row in timeline)
