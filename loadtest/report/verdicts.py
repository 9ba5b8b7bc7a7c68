"""The autoscaling verdicts of a run: how long from the load rise to the first scale-up, how many replicas at
the peak, how long to scale down after the load fell, how many requests failed while replicas changed.

Input: the runner's per-second timeline and optionally the HPA's response, live (the watcher's rows) or
predicted (the offline predictor's syncs), as one `Scaling` series on the timeline's clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

LOCUST_CPU_WARNING_PERCENT = 90.0
Row = Mapping[str, Any]


@dataclass(frozen=True)
class ScalingPoint:
    """The HPA's state at `t` s: desired and ready replicas, CPU utilization (% of request) and target."""

    t: float
    desired: int
    ready: int
    utilization: float | None = None
    target: float | None = None


@dataclass(frozen=True)
class Scaling:
    """The replica response to the load, on the timeline's clock."""

    source: Literal["live", "predicted"]
    points: Sequence[ScalingPoint]
    description: str  # e.g. "live HPA default/model-api" or "values-prod.yaml, predicted at 25x traffic"
    min_replicas: int | None = None
    max_replicas: int | None = None

    def state_at(self, t: float) -> ScalingPoint | None:
        """The last point at or before `t` (the HPA holds its state between syncs)."""
        before = [p for p in self.points if p.t <= t]
        return before[-1] if before else None


@dataclass(frozen=True)
class Verdicts:
    """Seconds are on the run's clock (0 = start of the load test); None = not observed in this run."""

    load_start_s: float | None
    load_increases_s: list[float]
    load_fell_s: float | None
    baseline_replicas: int | None
    first_scale_up_s: float | None
    time_to_first_scale_up_s: float | None  # from the load start
    scale_up_after_increase_s: float | None  # from the last load increase before the scale-up
    peak_desired: int | None
    peak_ready: int | None
    scale_down_start_s: float | None
    time_to_scale_down_s: float | None  # from the load fall to the first drop in desired replicas
    back_to_baseline_s: float | None
    requests: int
    failures: int
    failures_while_scaling: int | None  # None: scaling predicted, not lived by these requests
    locust_cpu_peak_percent: float | None
    locust_cpu_seconds_over_threshold: int
    warnings: list[str] = field(default_factory=list)


def _first(values: Sequence[float]) -> float | None:
    return values[0] if values else None


def _load_events(timeline: Sequence[Row]) -> tuple[float | None, list[float], float | None]:
    """(load start, times the user count rose, time the load fell from its peak).

    A row samples the interval that ends at its `t`, so a change first seen in a row happened after the
    previous row's `t`: that is the time reported (0 for the first row).
    """
    samples = [(float(r["t"]), int(r.get("users") or 0)) for r in timeline]
    if not samples or max(u for _, u in samples) == 0:
        return None, [], None
    users = [(since, u) for since, (_, u) in zip([0.0] + [t for t, _ in samples], samples, strict=False)]
    start = next(since for since, u in users if u > 0)
    increases = [since for (_, before), (since, u) in itertools.pairwise(users) if u > before and before > 0]
    peak = max(u for _, u in users)
    peak_at = next(since for since, u in users if u == peak)
    fell = next((since for since, u in users if since > peak_at and u < peak), None)
    if fell is None:  # the run ended at its peak: the load fell when the run stopped
        fell = samples[-1][0]
    return start, [start, *increases], fell


def compute_verdicts(timeline: Sequence[Row], scaling: Scaling | None) -> Verdicts:
    """The autoscaling verdicts for a per-second timeline and its replica response."""
    load_start, increases, load_fell = _load_events(timeline)
    requests = int(timeline[-1].get("requests") or 0) if timeline else 0
    failures = int(timeline[-1].get("failures") or 0) if timeline else 0
    cpu = [float(r["locust_cpu_percent"]) for r in timeline if r.get("locust_cpu_percent") is not None]
    over = sum(1 for c in cpu if c > LOCUST_CPU_WARNING_PERCENT)
    warnings = []
    if over:
        warnings.append(
            f"locust itself used more than {LOCUST_CPU_WARNING_PERCENT:.0f}% CPU for {over} s "
            f"(peak {max(cpu):.0f}%): "
            "the load generator was a bottleneck, so the service saw less load than intended"
        )
    facts: dict[str, Any] = {
        "baseline_replicas": None,
        "first_scale_up_s": None,
        "time_to_first_scale_up_s": None,
        "scale_up_after_increase_s": None,
        "peak_desired": None,
        "peak_ready": None,
        "scale_down_start_s": None,
        "time_to_scale_down_s": None,
        "back_to_baseline_s": None,
        "failures_while_scaling": None,
    }
    if scaling is not None and scaling.points and load_start is not None:
        facts.update(_scaling_facts(timeline, scaling, load_start, increases, load_fell))
    return Verdicts(
        load_start_s=load_start,
        load_increases_s=increases,
        load_fell_s=load_fell,
        requests=requests,
        failures=failures,
        locust_cpu_peak_percent=max(cpu) if cpu else None,
        locust_cpu_seconds_over_threshold=over,
        warnings=warnings,
        **facts,
    )


def _scaling_facts(
    timeline: Sequence[Row],
    scaling: Scaling,
    load_start: float,
    increases: list[float],
    load_fell: float | None,
) -> dict[str, Any]:
    baseline = (scaling.state_at(load_start) or scaling.points[0]).desired
    ups = [p.t for p in scaling.points if p.t >= load_start and p.desired > baseline]
    first_up = _first(ups)
    facts: dict[str, Any] = {
        "baseline_replicas": baseline,
        "first_scale_up_s": first_up,
        "peak_desired": max(p.desired for p in scaling.points),
        "peak_ready": max(p.ready for p in scaling.points),
    }
    if first_up is not None:
        facts["time_to_first_scale_up_s"] = first_up - load_start
        facts["scale_up_after_increase_s"] = first_up - max(t for t in increases if t <= first_up)
    if load_fell is not None and first_up is not None:
        at_fall = scaling.state_at(load_fell) or scaling.points[0]
        after = [p for p in scaling.points if p.t > load_fell]
        # The HPA sees the load a metric window late, so it may still scale up after the load fell: the
        # scale-down starts at the first drop below the highest count since the fall.
        highest = itertools.accumulate([at_fall.desired, *(p.desired for p in after)], max)
        down = _first([p.t for p, before in zip(after, highest, strict=False) if p.desired < before])
        facts["scale_down_start_s"] = down
        facts["time_to_scale_down_s"] = None if down is None else down - load_fell
        facts["back_to_baseline_s"] = _first(
            [p.t for p in after if p.desired <= baseline and p.ready <= baseline]
        )
    if scaling.source == "live":
        # Counted from the cumulative column: rows are about, not exactly, 1 s apart (a rate is not a count).
        totals = [int(r.get("failures") or 0) for r in timeline]
        facts["failures_while_scaling"] = sum(
            now - before
            for r, before, now in zip(timeline, [0, *totals], totals, strict=False)
            if (state := scaling.state_at(float(r["t"]))) is not None and state.desired != state.ready
        )
    return facts


def _seconds(value: float | None) -> str:
    return "not observed" if value is None else f"{value:.0f} s"


def verdict_lines(verdicts: Verdicts, scaling: Scaling | None) -> list[tuple[str, str]]:
    """(question, answer) rows of the Markdown verdict table."""
    v = verdicts
    if scaling is None:
        scaling_rows = [("replicas", "no HPA watched or predicted in this run")]
    else:
        up = (
            "no scale-up"
            if v.first_scale_up_s is None
            else (
                f"t={v.first_scale_up_s:.0f} s: "
                f"{_seconds(v.time_to_first_scale_up_s)} after the load started, "
                f"{_seconds(v.scale_up_after_increase_s)} after the last load increase before it"
            )
        )
        bounds = f" (min {scaling.min_replicas}, max {scaling.max_replicas})" if scaling.max_replicas else ""
        down = (
            "no scale-down within the run"
            if v.scale_down_start_s is None
            else (
                f"started t={v.scale_down_start_s:.0f} s, "
                f"{_seconds(v.time_to_scale_down_s)} after the load fell "
                f"(t={v.load_fell_s:.0f} s); back to {v.baseline_replicas} at "
                + ("—" if v.back_to_baseline_s is None else f"t={v.back_to_baseline_s:.0f} s")
            )
        )
        failing = (
            "n/a: the scaling is predicted, the requests ran against one local process"
            if v.failures_while_scaling is None
            else f"{v.failures_while_scaling} of {v.failures} failures"
        )
        scaling_rows = [
            (f"time from load rise to first scale-up ({scaling.source})", up),
            (
                "peak replicas",
                f"{v.peak_desired} desired, {v.peak_ready} ready{bounds}; "
                f"{v.baseline_replicas} before the load",
            ),
            ("time to scale down after the load fell", down),
            ("failures while scaling", failing),
        ]
    cpu = (
        "not measured"
        if v.locust_cpu_peak_percent is None
        else (
            f"peak {v.locust_cpu_peak_percent:.0f}%"
            + (
                f" — WARNING: above {LOCUST_CPU_WARNING_PERCENT:.0f}% for "
                f"{v.locust_cpu_seconds_over_threshold} s"
                if v.warnings
                else ": fine"
            )
        )
    )
    return [
        *scaling_rows,
        ("requests / failures", f"{v.requests} / {v.failures}"),
        ("load generator (locust) CPU", cpu),
    ]
