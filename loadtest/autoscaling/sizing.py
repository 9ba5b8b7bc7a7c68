"""The sizing question: which target and maxReplicas keep p95 latency under a goal at peak load, for CPU
and (``size_strategies``) for every strategy: requests/s, in flight, KEDA.

Model (deliberately simple; every step is one line below):

1. CPU per pod: a request costs ``cpu_ms_per_request`` ms of CPU (measured locally), so ``rps`` requests per
   second cost ``rps x cpu_ms_per_request`` millicores.
2. Replicas at peak for a CPU target of ``t`` % of the request ``R``: the HPA converges (from below) to
   ``N = ceil(peak_rps x cpu_ms / (t/100 x R))``; the utilization it then shows is
   ``peak_rps x cpu_ms / (N x R)``.
3. Latency inflation, M/M/1 per pod: a pod serves with ``capacity`` millicores (one core for the
   service's single worker process, or its CPU limit if lower); its busy fraction is
   ``rho = usage / capacity``; every quantile of an M/M/1 response time scales by ``1 / (1 - rho)``, so
   ``p95(rho) = measured_p95_at_low_load / (1 - rho)`` (infinite when ``rho >= 1``).
4. The HPA's tolerance lets utilization sit up to 10 % above the target without scaling, so a target is
   judged on the worst case inside that band: ``rho_worst = 1.1 x t/100 x R / capacity``.
5. A row is ok when the worst-case p95 meets the goal and ``N <= maxReplicas``. The recommendation is the
   highest ok target (fewest pods); ``verify`` replays a step to the peak through the HPA predictor to
   check that the HPA gets there (to the fewest pods that put the peak inside the tolerance band, where
   the HPA stops) and how long it takes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from loadtest.autoscaling.pipeline import ServiceCosts
from loadtest.autoscaling.replica_calculator import TOLERANCE
from loadtest.autoscaling.simulation import first_time_at, predict
from loadtest.autoscaling.spec import HpaSpec, MetricTarget

DEFAULT_TARGETS = (40, 50, 60, 70, 80, 90)
ONE_CORE_MILLICORES = 1000


@dataclass(frozen=True)
class SizingInput:
    peak_rps: float
    cpu_ms_per_request: float
    cpu_request_millicores: int
    target_p95_ms: float
    measured_p95_ms: float  # p95 at low load, measured locally
    max_replicas: int
    pod_capacity_millicores: int = ONE_CORE_MILLICORES

    def __post_init__(self) -> None:
        for name in ("peak_rps", "cpu_ms_per_request", "target_p95_ms", "measured_p95_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a number > 0, got {value}")
        for name in ("cpu_request_millicores", "max_replicas", "pod_capacity_millicores"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @classmethod
    def from_spec(cls, spec: HpaSpec, **fields: float) -> SizingInput:
        """CPU request, maxReplicas and capacity (the CPU limit if below a core) from the rendered HPA."""
        capacity = min(ONE_CORE_MILLICORES, spec.cpu_limit_milli or ONE_CORE_MILLICORES)
        return cls(
            cpu_request_millicores=spec.container_requests[spec.main_container].get("cpu", 0),
            max_replicas=spec.max_replicas,
            pod_capacity_millicores=capacity,
            **fields,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class SizingRow:
    target_percent: int
    replicas: int  # needed at peak
    utilization_percent: float  # what the HPA shows at peak with that many replicas
    p95_ms: float  # predicted at that utilization
    worst_p95_ms: float  # predicted at the top of the tolerance band
    fits_max_replicas: bool
    ok: bool


def predicted_p95(measured_p95_ms: float, busy_fraction: float) -> float:
    """M/M/1 inflation of a low-load quantile."""
    return math.inf if busy_fraction >= 1 else measured_p95_ms / (1 - busy_fraction)


def size(sizing: SizingInput, targets: Iterable[int] = DEFAULT_TARGETS) -> list[SizingRow]:
    """One row per CPU target utilization (percent of the request)."""
    peak_millicores = sizing.peak_rps * sizing.cpu_ms_per_request
    rows = []
    for target in targets:
        if not 1 <= target <= 1000:
            raise ValueError(f"target utilization must be 1..1000 %, got {target}")
        replicas = math.ceil(peak_millicores / (target / 100 * sizing.cpu_request_millicores))
        per_pod = peak_millicores / replicas
        worst_per_pod = (1 + TOLERANCE) * target / 100 * sizing.cpu_request_millicores
        p95 = predicted_p95(sizing.measured_p95_ms, per_pod / sizing.pod_capacity_millicores)
        worst = predicted_p95(sizing.measured_p95_ms, worst_per_pod / sizing.pod_capacity_millicores)
        fits = replicas <= sizing.max_replicas
        rows.append(
            SizingRow(
                target,
                replicas,
                100 * per_pod / sizing.cpu_request_millicores,
                p95,
                worst,
                fits,
                fits and worst <= sizing.target_p95_ms,
            )
        )
    return rows


def recommend(rows: Sequence[SizingRow]) -> SizingRow | None:
    """The highest target that meets the p95 goal within maxReplicas (fewest pods), if any."""
    return max((row for row in rows if row.ok), key=lambda row: row.target_percent, default=None)


def latency_ok_rows(rows: Sequence[SizingRow], goal_ms: float) -> list[SizingRow]:
    """Rows whose latency would be fine if maxReplicas were raised (to say what maxReplicas would suffice)."""
    return [row for row in rows if row.worst_p95_ms <= goal_ms]


@dataclass(frozen=True)
class Verification:
    target_percent: int
    max_replicas: int
    replicas_needed: int  # the fewest pods that bring the peak's utilization inside the tolerance band
    peak_ready_replicas: int
    seconds_to_needed: float | None  # from the step to `replicas_needed` ready pods; None: never reached


def with_cpu_target(spec: HpaSpec, target_percent: int, max_replicas: int) -> HpaSpec:
    """The spec with its CPU utilization target and maxReplicas replaced (other metrics kept)."""
    metrics = tuple(
        dataclasses.replace(m, average_utilization=target_percent) if m.resource == "cpu" else m
        for m in spec.metrics
    )
    if not any(m.resource == "cpu" for m in metrics):
        metrics = (*metrics, MetricTarget("cpu", average_utilization=target_percent))
    return dataclasses.replace(spec, metrics=metrics, max_replicas=max_replicas)


def verify(
    spec: HpaSpec,
    sizing: SizingInput,
    row: SizingRow,
    *,
    ready_delay: float = 30,
    base_rps: float = 0.0,
    step_at: float = 60.0,
    hold: float = 600.0,
    memory_bytes_per_pod: float | None = None,
) -> Verification:
    """Replay a step from `base_rps` to the peak through the predictor with this row's target."""
    max_replicas = max(spec.max_replicas, row.replicas)
    candidate = with_cpu_target(spec, row.target_percent, max_replicas)
    timeline = predict(
        candidate,
        [(0.0, base_rps), (step_at, sizing.peak_rps)],
        sizing.cpu_ms_per_request,
        ready_delay=ready_delay,
        duration=step_at + hold,
        memory_bytes_per_pod=memory_bytes_per_pod,
    )
    # The HPA stops scaling once utilization is inside its tolerance band (the table's worst case), which
    # can be below row.replicas: the fewest pods that bring the peak inside the band are enough.
    peak_millicores = sizing.peak_rps * sizing.cpu_ms_per_request
    band_top = (1 + TOLERANCE) * row.target_percent / 100 * sizing.cpu_request_millicores
    needed = min(row.replicas, math.ceil(peak_millicores / band_top - 1e-9))
    reached = first_time_at([r for r in timeline if r.t >= step_at], needed)
    return Verification(
        target_percent=row.target_percent,
        max_replicas=max_replicas,
        replicas_needed=needed,
        peak_ready_replicas=max(r.ready_replicas for r in timeline),
        seconds_to_needed=None if reached is None else reached - step_at,
    )


def format_table(rows: Sequence[SizingRow], goal_ms: float) -> str:
    columns = (
        ("target %", 8),
        ("replicas", 8),
        ("util %", 7),
        ("p95 ms", 8),
        ("worst p95", 9),
        ("fits max", 8),
    )
    header = " ".join(f"{name:>{width}}" for name, width in columns) + "  p95 ok?"
    lines = [header]
    for row in rows:
        lines.append(
            f"{row.target_percent:>8} {row.replicas:>8} {row.utilization_percent:>7.1f} {_ms(row.p95_ms):>8} "
            f"{_ms(row.worst_p95_ms):>9} {'yes' if row.fits_max_replicas else 'NO':>8}  "
            f"{'yes' if row.worst_p95_ms <= goal_ms else 'NO'}"
        )
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "overload" if math.isinf(value) else f"{value:.1f}"


# --- the same question per strategy ----------------------------------------------------------------------


@dataclass(frozen=True)
class StrategySize:
    """The highest target of one strategy whose worst case (top of the tolerance band) meets the goal."""

    strategy: str
    target: str  # the value to put in the chart, with its unit
    values_key: str  # where it goes
    replicas: int  # needed at the peak
    worst_p95_ms: float
    fits_max_replicas: bool


def busiest_ok_rps(sizing: SizingInput) -> float:
    """The most requests/s a pod may serve with its p95 at the goal: p95_low / (1 - rho) = goal."""
    throughput = sizing.pod_capacity_millicores / sizing.cpu_ms_per_request
    return max(0.0, throughput * (1 - sizing.measured_p95_ms / sizing.target_p95_ms))


def size_strategies(sizing: SizingInput, latency_ms: float | None) -> list[StrategySize]:
    """Per strategy, the target that meets the p95 goal at the peak with the fewest pods.

    Each target is set so that the top of the HPA's tolerance band (target x 1.1, where the controller
    stops scaling) still keeps a pod at or under the busiest load that meets the goal. The band is the
    same 10 % for every metric, but in-flight grows faster than linearly with the load, so 10 % more
    in flight is less than 10 % more requests/s: an in-flight target sits closer to the limit. Scale to
    zero (KEDA) answers like the requests/s target at the peak; its cost is the cold start, not pods."""
    limit = busiest_ok_rps(sizing)
    band = 1 + TOLERANCE
    costs = ServiceCosts(
        sizing.cpu_ms_per_request,
        latency_ms=latency_ms,
        p95_ms=sizing.measured_p95_ms,
        capacity_millicores=sizing.pod_capacity_millicores,
    )
    rows = []
    cpu_percent = math.floor(100 * limit * sizing.cpu_ms_per_request / sizing.cpu_request_millicores / band)
    cpu_rps = cpu_percent / 100 * sizing.cpu_request_millicores / sizing.cpu_ms_per_request
    rate = math.floor(10 * limit / band) / 10
    candidates = [
        ("CPU", f"{cpu_percent} %", "autoscaling.targetCPUUtilizationPercentage", cpu_rps, band * cpu_rps),
        ("requests/s", f"{rate:g} per pod", "autoscaling.targetRequestsPerSecond", rate, band * rate),
        (
            "KEDA requests/s (to zero)",
            f"{rate:g} per pod",
            "autoscaling.engine keda + targetRequestsPerSecond",
            rate,
            band * rate,
        ),
    ]
    if latency_ms is not None and limit > 0:
        in_flight = math.floor(100 * costs.in_flight(limit) / band) / 100
        candidates.append(
            (
                "in flight",
                f"{in_flight:g} per pod",
                "autoscaling.targetInFlight",
                costs.rps_per_pod_for_in_flight(in_flight),
                costs.rps_per_pod_for_in_flight(band * in_flight),
            )
        )
    for name, target, key, rps_at_target, worst_rps in candidates:
        replicas = math.ceil(sizing.peak_rps / rps_at_target) if rps_at_target > 0 else 0
        rows.append(
            StrategySize(
                name,
                target,
                key,
                replicas,
                costs.p95(worst_rps),
                0 < replicas <= sizing.max_replicas,
            )
        )
    return rows


def format_strategy_table(rows: Sequence[StrategySize]) -> str:
    ok = [r for r in rows if r.fits_max_replicas and r.replicas > 0]
    fewest = min((r.replicas for r in ok), default=None)
    width = max(len(r.strategy) for r in rows)
    lines = [f"{'strategy':<{width}} {'target':>14} {'pods at peak':>12} {'worst p95 ms':>12}  values key"]
    for r in rows:
        mark = " *" if r.replicas == fewest and r in ok else "  "
        fits = "" if r.fits_max_replicas else " (above maxReplicas)"
        lines.append(
            f"{r.strategy:<{width}} {r.target:>14} {str(r.replicas) + mark:>12} {_ms(r.worst_p95_ms):>12}  "
            f"{r.values_key}{fits}"
        )
    lines.append("* fewest pods at the peak that still meet the goal")
    return "\n".join(lines)
