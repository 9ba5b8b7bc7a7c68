"""From a load measured on one local process to the load a production HPA would see, and its prediction.

The demo measures requests/s per second and the service's CPU per request locally, then asks how the
production HPA answers the same load *shape* at production traffic. Two factors map one onto the other:

- requests/s: scaled so that the local peak needs `peak_pods` pods at the HPA's CPU target. One request
  costs `cpu_ms_per_request` ms of CPU, so r requests/s use r x cpu_ms millicores; a pod at the target uses
  request x target/100 millicores; aim half a pod below `peak_pods` so the ceiling lands on it;
- time: each measured second lasts `time_scale` seconds in production (a 15 s local step spans several
  15 s HPA syncs).

Every function here is arithmetic on the timeline rows (`t`, `rps`, `users`) and the HPA spec; nothing
runs or renders anything.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.autoscaling import compare
from loadtest.autoscaling.pipeline import ServiceCosts
from loadtest.autoscaling.simulation import SyncRow, predict
from loadtest.autoscaling.spec import HpaSpec

TAIL_AFTER_BASELINE_S = 60.0  # predicted time kept once the HPA is back to minReplicas
POD_START_ALLOWANCE_S = 5.0  # scheduling and container creation, which a local process does not show


class ScaleError(ValueError):
    """The measured load cannot be scaled to this HPA; the message names the option or value at fault."""


def peak_rps(timeline: Sequence[Mapping[str, Any]]) -> float:
    """The median requests/s while the most users ran: the load's top step, robust to one slow second."""
    top = max(int(r["users"]) for r in timeline)
    return statistics.median(float(r["rps"]) for r in timeline if int(r["users"]) == top)


def cpu_request_milli(spec: HpaSpec) -> int:
    """The pod's CPU request as the HPA's CPU target counts it; ScaleError when the HPA ignores CPU."""
    cpu_metric = next((m for m in spec.metrics if m.resource == "cpu" and m.average_utilization), None)
    if cpu_metric is None or spec.cpu_target is None:
        raise ScaleError("the HPA has no CPU utilization target, so CPU per request predicts nothing")
    return spec.request_milli(cpu_metric)


def rps_scale_for(spec: HpaSpec, peak: float, cpu_ms_per_request: float, peak_pods: int) -> float:
    """Traffic multiplier at which the peak needs `peak_pods` pods at the HPA's CPU target."""
    if not spec.min_replicas < peak_pods <= spec.max_replicas:
        raise ScaleError(
            f"--prod-peak-pods {peak_pods} must lie above minReplicas {spec.min_replicas} "
            f"and at most maxReplicas {spec.max_replicas}"
        )
    if peak <= 0 or cpu_ms_per_request <= 0:
        raise ScaleError(
            f"nothing to scale: peak {peak} requests/s at {cpu_ms_per_request} ms of CPU per request"
        )
    per_pod_millicores = cpu_request_milli(spec) * spec.cpu_target / 100.0
    return (peak_pods - 0.5) * per_pod_millicores / (peak * cpu_ms_per_request)


def production_load(
    timeline: Sequence[Mapping[str, Any]], rps_scale: float, time_scale: float
) -> list[tuple[float, float]]:
    """The measured per-second load as (t, rps) steps on the production clock, then nothing."""
    load = [(round((float(r["t"]) - 1.0) * time_scale, 3), float(r["rps"]) * rps_scale) for r in timeline]
    load = [(max(t, 0.0), rps) for t, rps in load]
    load = [row for i, row in enumerate(load) if i == 0 or row[0] > load[i - 1][0]]
    return [*load, (round(float(timeline[-1]["t"]) * time_scale, 3), 0.0)]


def trimmed(rows: Sequence[SyncRow], load_end: float, min_replicas: int) -> list[SyncRow]:
    """Predicted syncs up to a minute after the HPA is back at minReplicas once the load has ended."""
    back = next((r.t for r in rows if r.t > load_end and r.desired == r.ready_replicas == min_replicas), None)
    return list(rows) if back is None else [r for r in rows if r.t <= back + TAIL_AFTER_BASELINE_S]


def on_production_clock(timeline: Sequence[Mapping[str, Any]], time_scale: float) -> list[dict[str, Any]]:
    """The timeline with `t` stretched to production time; the measured time kept as `t_measured`."""
    return [{**row, "t": round(float(row["t"]) * time_scale, 2), "t_measured": row["t"]} for row in timeline]


def ready_delay_for(ready_seconds: float, readiness_period: float) -> float:
    """A new pod's start-to-Ready in production: the local start-to-ready, one readiness probe period (the
    kubelet probes periodically) and the time to schedule and create the container."""
    return math.ceil(ready_seconds) + readiness_period + POD_START_ALLOWANCE_S


@dataclass(frozen=True)
class ProductionForecast:
    """The production HPA's predicted answer to the measured load, and how the load was scaled."""

    spec: HpaSpec
    peak_rps: float
    peak_pods: int
    rps_scale: float
    time_scale: float
    ready_delay: float
    rows: list[SyncRow]


def forecast(
    spec: HpaSpec,
    timeline: Sequence[Mapping[str, Any]],
    *,
    cpu_ms_per_request: float,
    idle_millicores: float,
    ready_delay: float,
    time_scale: float,
    peak_pods: int | None = None,
) -> ProductionForecast:
    """Scale the measured `timeline` to `spec`'s HPA (peak at `peak_pods`, default 80 % of maxReplicas and
    at least minReplicas + 2) and replay it through the predictor."""
    peak_pods = peak_pods or max(spec.min_replicas + 2, round(0.8 * spec.max_replicas))
    peak = peak_rps(timeline)
    rps_scale = rps_scale_for(spec, peak, cpu_ms_per_request, peak_pods)
    load = production_load(timeline, rps_scale, time_scale)
    rows = predict(spec, load, cpu_ms_per_request, ready_delay=ready_delay, idle_millicores=idle_millicores)
    return ProductionForecast(
        spec=spec,
        peak_rps=peak,
        peak_pods=peak_pods,
        rps_scale=rps_scale,
        time_scale=time_scale,
        ready_delay=ready_delay,
        rows=trimmed(rows, load[-1][0], spec.min_replicas),
    )


def low_load_latency(timeline: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """(mean latency, p95) in ms at the lowest load of the run: the medians of the per-second p50 and p95
    while the fewest users ran (the p50 stands in for the mean, which locust does not report per second)."""
    rows = [r for r in timeline if isinstance(r.get("p50_ms"), int | float) and r.get("users")]
    if not rows:
        raise ScaleError("the run has no latency samples to model queueing from")
    low = min(int(r["users"]) for r in rows)
    first = [r for r in rows if int(r["users"]) == low and isinstance(r.get("p95_ms"), int | float)]
    return (
        statistics.median(float(r["p50_ms"]) for r in first),
        statistics.median(float(r["p95_ms"]) for r in first),
    )


def compare_strategies(
    forecast: ProductionForecast,
    timeline: Sequence[Mapping[str, Any]],
    costs: ServiceCosts,
    p95_goal_ms: float,
) -> list[compare.StrategyRun]:
    """The measured load on the production clock and traffic, replayed under each strategy with the same
    costs, pod start time and pipeline delays (compare.py), the CPU strategy at the spec's own target."""
    load = production_load(timeline, forecast.rps_scale, forecast.time_scale)
    candidates = compare.strategies(
        forecast.spec, costs, cpu_target=forecast.spec.cpu_target or compare.DEFAULT_CPU_TARGET
    )
    duration = forecast.rows[-1].t if forecast.rows else None
    return compare.compare(
        candidates, load, costs, p95_goal_ms, ready_delay=forecast.ready_delay, duration=duration
    )
