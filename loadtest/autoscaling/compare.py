"""One load curve, several autoscaling strategies, the same measured service: which one meets the p95 goal
with the fewest pod-minutes.

``strategies(base, costs, ...)`` builds the candidates from one rendered spec (its min/max replicas,
behavior and requests): CPU utilization, requests/s per pod (a Pods metric through Prometheus Adapter),
requests in flight per pod (likewise), and KEDA scaling to zero on the requests/s arriving at the Service
(with the polling, cooldown and activation threshold of the chart's requests-arriving trigger when the spec
was rendered with one).
The request targets default to the load at which a pod sits at the CPU target, so every strategy aims at
the same pod count at steady state and the comparison is about the signal and its delays, not the target.

``compare(...)`` replays each through simulation.predict and scores it second by second:

- time to first scale-up: from the first rise of the load to the first sync that asks for more pods;
- peak replicas: the most pods at once (Ready or not: all of them cost);
- seconds above the p95 goal: seconds with traffic in which the p95 of a Ready pod, queueing included
  (ServiceCosts.p95: the measured low-load p95 / (1 - busy fraction)), is above the goal, or no pod is
  Ready at all (requests wait for a cold start or fail);
- pod-minutes: the integral of the pod count.

The winner of each column is the lowest value (ties: every strategy that has it).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from loadtest.autoscaling.controller import SYNC_PERIOD
from loadtest.autoscaling.pipeline import DEFAULT_PIPELINE, MetricPipeline, ServiceCosts
from loadtest.autoscaling.simulation import SimulatedPod, SyncRow, predict, rps_at, validate_load
from loadtest.autoscaling.spec import HpaSpec, KedaScaling, MetricTarget

DEFAULT_CPU_TARGET = 70
KEDA_POLLING_INTERVAL = 15.0  # the chart's autoscaling.keda.pollingInterval
KEDA_COOLDOWN_PERIOD = 300.0  # the chart's autoscaling.keda.cooldownPeriod


@dataclass(frozen=True)
class Strategy:
    name: str
    spec: HpaSpec


@dataclass(frozen=True)
class Score:
    strategy: str
    first_scale_up_s: float | None  # None: never scaled up
    peak_replicas: int
    seconds_above_goal: float
    pod_minutes: float
    absorbed_s: float | None = None  # from the first load rise to the last second above the goal after it


@dataclass(frozen=True)
class StrategyRun:
    strategy: Strategy
    rows: list[SyncRow]
    pods: list[SimulatedPod]
    score: Score


def rps_target_for(spec: HpaSpec, costs: ServiceCosts, cpu_target: int) -> float:
    """Requests/s per pod at which a pod's CPU sits at `cpu_target` % of its request."""
    request = spec.container_requests.get(spec.main_container, {}).get("cpu", 0)
    if request <= 0:
        raise ValueError("the pod has no CPU request: give the request-based targets explicitly")
    return request * cpu_target / 100 / costs.cpu_ms_per_request


def _custom(name: str, target: float, signal: str, source: str = "Pods") -> MetricTarget:
    return MetricTarget(
        "", source=source, metric_name=name, average_value_milli=math.ceil(target * 1000), signal=signal
    )


def strategies(
    base: HpaSpec,
    costs: ServiceCosts,
    *,
    cpu_target: int = DEFAULT_CPU_TARGET,
    rps_target: float | None = None,
    in_flight_target: float | None = None,
) -> list[Strategy]:
    """CPU, RPS, in-flight and KEDA-to-zero specs sharing `base`'s replicas, behavior and requests."""
    rps = rps_target or rps_target_for(base, costs, cpu_target)
    in_flight = in_flight_target or costs.in_flight(rps)
    plain = dataclasses.replace(base, keda=None)
    return [
        Strategy(f"CPU {cpu_target} %", dataclasses.replace(plain, metrics=(cpu_metric(cpu_target),))),
        Strategy(
            f"RPS {rps:.1f}/pod",
            dataclasses.replace(plain, metrics=(_custom("model_api_requests_per_second", rps, "rps"),)),
        ),
        Strategy(
            f"in-flight {in_flight:.2f}/pod",
            dataclasses.replace(
                plain, metrics=(_custom("model_api_requests_in_flight", in_flight, "in_flight"),)
            ),
        ),
        Strategy(f"KEDA RPS {rps:.1f}/pod, to zero", keda_to_zero(base, rps)),
    ]


def keda_to_zero(base: HpaSpec, rps: float) -> HpaSpec:
    """KEDA scaling to zero and back on the requests/s arriving at the Service, `rps` per pod: with the
    polling interval, cooldown, rate() window and activation threshold of `base`'s requests-arriving trigger
    when `base` is the chart's ScaledObject with one (autoscaling.keda.activation.*), else the chart's
    defaults."""
    metric = _custom("s0-prometheus", rps, "offered_rps", source="External")
    keda = KedaScaling(0, KEDA_POLLING_INTERVAL, KEDA_COOLDOWN_PERIOD, (0.0,))
    arriving = next((i for i, m in enumerate(base.metrics) if m.signal == "offered_rps"), None)
    if base.keda is not None and arriving is not None:
        metric = dataclasses.replace(metric, rate_window=base.metrics[arriving].rate_window)
        activation = dict(enumerate(base.keda.activation_thresholds)).get(arriving, 0.0)
        keda = KedaScaling(0, base.keda.polling_interval, base.keda.cooldown_period, (activation,))
    # KEDA gives its HPA max(minReplicaCount, 1)
    return dataclasses.replace(base, min_replicas=1, metrics=(metric,), keda=keda)


def cpu_metric(target: int) -> MetricTarget:
    return MetricTarget("cpu", average_utilization=target)


def score(
    name: str,
    rows: Sequence[SyncRow],
    pods: Sequence[SimulatedPod],
    load: Sequence[tuple[float, float]],
    costs: ServiceCosts,
    p95_goal_ms: float,
) -> Score:
    """The table's columns for one replay, second by second up to the last sync."""
    end = rows[-1].t
    above, pod_seconds = 0.0, 0.0
    rises, falls = load_changes(load)
    spike = rises[0] if rises else 0.0
    spike_end = next((t for t in falls if t > spike), end)
    last_bad = None
    for second in range(int(end)):
        t = second + 0.5
        running = sum(1 for p in pods if p.started <= t < p.deleted)
        ready = sum(1 for p in pods if p.ready_at <= t < p.deleted)
        pod_seconds += running
        rps = rps_at(load, t)
        if rps > 0 and (ready == 0 or costs.p95(rps / ready) > p95_goal_ms):
            above += 1
            if spike <= t < spike_end:
                last_bad = t
    first_up = next((r.t for r in rows if rises and r.t >= rises[0] and r.desired > r.replicas), None)
    return Score(
        strategy=name,
        first_scale_up_s=None if first_up is None else first_up - rises[0],
        peak_replicas=max(max(r.replicas, r.desired) for r in rows),
        seconds_above_goal=above,
        pod_minutes=pod_seconds / 60,
        absorbed_s=0.0 if last_bad is None else last_bad + 0.5 - spike,
    )


def compare(
    candidates: Sequence[Strategy],
    load: Sequence[tuple[float, float]],
    costs: ServiceCosts,
    p95_goal_ms: float,
    *,
    ready_delay: float = 30,
    duration: float | None = None,
    pipeline: MetricPipeline = DEFAULT_PIPELINE,
) -> list[StrategyRun]:
    """Replay `load` under every strategy with the same costs, delays and pod start time."""
    rows_in = validate_load(load)
    runs = []
    for strategy in candidates:
        history: list[SimulatedPod] = []
        rows = predict(
            strategy.spec,
            rows_in,
            costs.cpu_ms_per_request,
            ready_delay=ready_delay,
            duration=duration,
            idle_millicores=costs.idle_millicores,
            latency_ms=costs.latency_ms,
            pipeline=pipeline,
            capacity_millicores=costs.capacity_millicores,
            history=history,
        )
        runs.append(
            StrategyRun(
                strategy, rows, history, score(strategy.name, rows, history, rows_in, costs, p95_goal_ms)
            )
        )
    return runs


def load_changes(load: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """(rises, falls) of the load; the first row is the steady state the replay starts in (a rise at t=0
    only when nothing else rises)."""
    pairs = list(itertools.pairwise(load))
    rises = [t for (_, before), (t, rps) in pairs if rps > before]
    falls = [t for (_, before), (t, rps) in pairs if rps < before]
    if not rises and load and load[0][1] > 0:
        rises = [load[0][0]]
    return rises, falls


COLUMNS = (
    ("first scale-up s", "first_scale_up_s"),
    ("peak replicas", "peak_replicas"),
    ("s above p95 goal", "seconds_above_goal"),
    ("pod-minutes", "pod_minutes"),
)


def winners(scores: Sequence[Score]) -> dict[str, list[str]]:
    """Per column, the strategies with the lowest value (a strategy that never scaled up wins nothing)."""
    best = {}
    for _, field in COLUMNS:
        values = [(getattr(s, field), s.strategy) for s in scores if getattr(s, field) is not None]
        low = min((v for v, _ in values), default=None)
        best[field] = [name for v, name in values if low is not None and math.isclose(v, low)]
    return best


def format_table(scores: Sequence[Score]) -> str:
    """The comparison as a text table, `*` marking the winner of each column, and a winners line."""
    best = winners(scores)
    width = max(len("strategy"), *(len(s.strategy) for s in scores))
    header = f"{'strategy':<{width}} " + " ".join(f"{title:>17}" for title, _ in COLUMNS)
    lines = [header]
    for s in scores:
        cells = []
        for _, field in COLUMNS:
            value = getattr(s, field)
            text = "never" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))
            cells.append(f"{text + (' *' if s.strategy in best[field] else '  '):>17}")
        lines.append(f"{s.strategy:<{width}} " + " ".join(cells))
    lines.append(
        "winners (* lowest): "
        + "; ".join(f"{title}: {', '.join(best[field]) or '-'}" for title, field in COLUMNS)
    )
    return "\n".join(lines)


def spike_load(
    base_rps: float, spike_rps: float, *, at: float = 127.0, hold: float = 300.0
) -> list[tuple[float, float]]:
    """A flat load, a sudden spike held `hold` seconds, then back: the shape of the spike example (the
    spike lands between two syncs, as it would on a cluster)."""
    return [(0.0, base_rps), (at, spike_rps), (at + hold, base_rps)]


def first_sync_reaching(rows: Sequence[SyncRow], replicas: int, after: float) -> float | None:
    """The first sync at or after `after` that asks for at least `replicas` pods."""
    return next((r.t for r in rows if r.t >= after and r.desired >= replicas), None)


def slug(name: str) -> str:
    """A strategy's name as a file name part: `CPU 70 %` -> `cpu-70`."""
    return "-".join("".join(c if c.isalnum() or c == "." else " " for c in name.lower()).split())


def describe_costs(
    costs: ServiceCosts,
    p95_goal_ms: float,
    pipeline: MetricPipeline,
    ready_delay: float,
    keda_polling_interval: float = KEDA_POLLING_INTERVAL,
) -> str:
    """The measured costs and assumed delays every strategy shares, in a line."""
    return (
        f"costs: {costs.cpu_ms_per_request:.2f} ms CPU/request, latency {costs.latency_ms:g} ms, p95 "
        f"{costs.p95_ms:g} ms at low load, pod capacity {costs.capacity_millicores:g}m "
        f"({costs.throughput:.1f} req/s); p95 goal {p95_goal_ms:g} ms; a new pod Ready after "
        f"{ready_delay:g} s; {pipeline.describe()}; KEDA polls every {keda_polling_interval:g} s and scales "
        "from zero on the requests/s arriving at the Service (an ingress counter: the pods' own series "
        "do not exist at zero)"
    )


def stuck_at_zero(spec: HpaSpec, rows: Sequence[SyncRow]) -> str:
    """A warning when requests arrived at zero replicas and no scale from zero followed (else ""): the syncs
    of each such stretch that ends without KEDA waking the workload (a stretch ended by a wake-up is the
    activation delay every scale from zero pays)."""
    waiting: list[float] = []
    stretch: list[float] = []
    for row in rows:
        if row.replicas == 0 and row.desired == 0 and row.rps > 0:
            stretch.append(row.t)
            continue
        if not (row.replicas == 0 and row.desired > 0):
            waiting += stretch
        stretch = []
    waiting += stretch
    if not waiting:
        return ""
    own_series = spec.keda is not None and all(m.signal != "offered_rps" for m in spec.metrics if m.is_custom)
    cause = (
        "its triggers read the pods' own series, which no pod reports at zero replicas: scale from zero "
        "needs a request count in front of the pods (an ingress or gateway metric)"
        if own_series
        else "no trigger was active"
    )
    return (
        f"WARNING: requests arrived at zero replicas for {len(waiting) * SYNC_PERIOD:g} s "
        f"(from t={waiting[0]:g} s) and nothing scaled from zero: {cause}"
    )
