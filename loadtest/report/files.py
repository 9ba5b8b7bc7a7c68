"""A load run as files a person can read: timeline CSV, JSON summary, a PNG figure, Markdown verdicts.

Input: the runner's per-second timeline (load, latency, CPU) and optionally the HPA's response — live (the
watcher's rows) or predicted (the offline predictor's syncs) — as one `Scaling` series. The verdicts answer
the autoscaling questions: how long from the load rise to the first scale-up, how many replicas at the peak,
how long to scale down after the load fell, and how many requests failed while replicas were changing.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # files only, never a window: runs headless in CI and over SSH

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

LOCUST_CPU_WARNING_PERCENT = 90.0
LEGEND_HEADROOM = 1.3
# (legend, timeline column, colour) of the CPU panel when no HPA is watched
PROCESS_CPU_SERIES = (
    ("locust (load generator)", "locust_cpu_percent", "tab:gray"),
    ("service process", "service_cpu_percent", "tab:red"),
)
# The runner's own columns, in this order; anything else (service CPU, watcher fields) follows sorted.
TIMELINE_COLUMNS = (
    "t",
    "users",
    "rps",
    "failures_per_s",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "requests",
    "failures",
    "locust_cpu_percent",
)
Row = Mapping[str, Any]
ENDPOINT_COLUMNS = ("name", "requests", "failures", "rps", "p50_ms", "p95_ms", "p99_ms")


@dataclass(frozen=True)
class FigureText:
    """The figure's words: its title, the load panel's title, the time axis label, the requests/s legend."""

    title: str
    load: str = "Load: requests/s and p95 latency of each 1 s window"
    time_axis: str = "time since the load started (s)"
    rps_legend: str = "requests/s"


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


# ---- files ----


def write_timeline_csv(path: Path, timeline: Sequence[Row]) -> None:
    extra = sorted({key for row in timeline for key in row} - set(TIMELINE_COLUMNS))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*TIMELINE_COLUMNS, *extra], restval="")
        writer.writeheader()
        writer.writerows(timeline)


def write_scaling_csv(path: Path, scaling: Scaling) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["t", "desired", "ready", "utilization", "target"])
        writer.writeheader()
        writer.writerows(asdict(p) for p in scaling.points)


def _column(timeline: Sequence[Row], name: str) -> tuple[list[float], list[float]]:
    """(t, value) for rows where `name` has a number; gaps (None, NaN) are left out."""
    pairs = [(float(r["t"]), float(r[name])) for r in timeline if isinstance(r.get(name), int | float)]
    pairs = [(t, v) for t, v in pairs if math.isfinite(v)]
    return [t for t, _ in pairs], [v for _, v in pairs]


def plot_timeline(
    path: Path,
    timeline: Sequence[Row],
    scaling: Scaling | None,
    *,
    text: FigureText,
) -> None:
    """One figure, three panels on one time axis: load + p95; replicas; CPU utilization against the target
    (without an HPA: the CPU of the load generator and of the service process)."""
    fig, (load_ax, replica_ax, cpu_ax) = plt.subplots(
        3, 1, figsize=(11, 9.5), sharex=True, gridspec_kw={"height_ratios": [1.2, 1, 1]}
    )
    fig.suptitle(text.title, fontsize=13, fontweight="bold")
    ends = [float(timeline[-1]["t"])] if timeline else []
    ends += [scaling.points[-1].t] if scaling and scaling.points else []
    end = max(ends, default=1.0)
    if scaling is not None and scaling.points:  # the HPA holds its last state until the end of the axis
        scaling = replace(scaling, points=[*scaling.points, replace(scaling.points[-1], t=end)])
    _plot_load(load_ax, timeline, text)
    _plot_replicas(replica_ax, scaling)
    if scaling is not None and scaling.points:
        _plot_utilization(cpu_ax, scaling)
    else:
        _plot_process_cpu(cpu_ax, timeline)
    cpu_ax.set_xlabel(text.time_axis)
    cpu_ax.set_xlim(0, end)
    for ax in (load_ax, replica_ax, cpu_ax):
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_load(ax: Any, timeline: Sequence[Row], text: FigureText) -> None:
    ax.set_title(f"(a) {text.load}", loc="left", fontsize=11)
    ax.plot(*_column(timeline, "rps"), color="tab:blue", lw=1.6, label=text.rps_legend)
    ax.step(*_column(timeline, "users"), where="post", color="gray", lw=1.2, ls=":", label="users")
    failures_t, failures = _column(timeline, "failures_per_s")
    if any(failures):
        ax.plot(failures_t, failures, color="tab:red", lw=1.4, label="failures/s")
    ax.set_ylabel("requests/s · users")
    latency_ax = ax.twinx()
    latency_ax.plot(*_column(timeline, "p95_ms"), color="tab:orange", lw=1.4, label="p95 latency")
    latency_ax.set_ylabel("p95 latency (ms)", color="tab:orange")
    for axis in (ax, latency_ax):  # headroom above the data for the one-line legend
        axis.set_ylim(0, max(axis.get_ylim()[1], 1.0) * LEGEND_HEADROOM)
    handles = ax.get_legend_handles_labels()[0] + latency_ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", ncol=len(handles), fontsize=9)


def _plot_replicas(ax: Any, scaling: Scaling | None) -> None:
    ax.set_ylabel("replicas")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if scaling is None or not scaling.points:
        ax.set_title("(b) Replicas", loc="left", fontsize=11)
        message = "no HPA in this run: `python -m loadtest run --watch-hpa` records a release's HPA"
        ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color="gray")
        return
    ax.set_title(f"(b) Replicas — {scaling.description}", loc="left", fontsize=11)
    times = [p.t for p in scaling.points]
    ax.step(
        times, [p.desired for p in scaling.points], where="post", color="tab:purple", lw=2, label="desired"
    )
    ax.step(
        times,
        [p.ready for p in scaling.points],
        where="post",
        color="tab:green",
        lw=1.6,
        ls="-.",
        label="ready",
    )
    for value, name, style in (
        (scaling.max_replicas, "maxReplicas", "--"),
        (scaling.min_replicas, "minReplicas", ":"),
    ):
        if value is not None:
            ax.axhline(value, color="gray", ls=style, lw=1, label=f"{name} = {value}")
    ax.set_ylim(0, max([p.desired for p in scaling.points] + [scaling.max_replicas or 0]) + 1)
    ax.legend(loc="best", fontsize=9)


def _plot_utilization(ax: Any, scaling: Scaling) -> None:
    ax.set_ylabel("CPU utilization\n(% of CPU request)")
    ax.set_title(
        f"(c) CPU utilization against the HPA target — {scaling.description}", loc="left", fontsize=11
    )
    measured = [p for p in scaling.points if p.utilization is not None]
    ax.step(
        [p.t for p in measured],
        [p.utilization for p in measured],
        where="post",
        color="tab:red",
        lw=1.8,
        label="utilization seen by the HPA",
    )
    for target in sorted({p.target for p in scaling.points if p.target is not None}):
        ax.axhline(target, color="black", ls="--", lw=1.2, label=f"target {target:.0f}%")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=9)


def _plot_process_cpu(ax: Any, timeline: Sequence[Row]) -> None:
    """Without an HPA: the load generator's and (when sampled) the service process's CPU."""
    ax.set_ylabel("CPU (% of one core)")
    ax.set_title(
        "(c) CPU of the load generator and the service process (no HPA in this run)", loc="left", fontsize=11
    )
    for label, column, color in PROCESS_CPU_SERIES:
        times, values = _column(timeline, column)
        if times:
            ax.plot(times, values, color=color, lw=1.4, label=label)
    ax.axhline(LOCUST_CPU_WARNING_PERCENT, color="black", ls="--", lw=1.2, label="locust warning threshold")
    ax.set_ylim(0, max(ax.get_ylim()[1], 100.0))
    ax.legend(loc="best", fontsize=9)


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


def write_markdown(
    path: Path,
    verdicts: Verdicts,
    scaling: Scaling | None,
    *,
    title: str,
    facts: Mapping[str, Any],
    endpoints: Sequence[Row],
    notes: Sequence[str],
    figure: str,
) -> None:
    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {value}" for key, value in facts.items()]
    lines += ["", "## Verdicts", "", "| question | answer |", "|---|---|"]
    lines += [f"| {question} | {answer} |" for question, answer in verdict_lines(verdicts, scaling)]
    if verdicts.warnings:
        lines += ["", *[f"> **WARNING**: {w}" for w in verdicts.warnings]]
    lines += ["", f"![timeline]({figure})", ""]
    if endpoints:
        lines += [
            "## Requests by endpoint",
            "",
            "| endpoint | requests | failures | requests/s | p50 ms | p95 ms | p99 ms |",
        ]
        lines += ["|---|---:|---:|---:|---:|---:|---:|"]
        lines += ["| " + " | ".join(str(e[key]) for key in ENDPOINT_COLUMNS) + " |" for e in endpoints]
        lines.append("")
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    path.write_text("\n".join(lines))


@dataclass(frozen=True)
class ReportFiles:
    directory: Path
    timeline_csv: Path
    summary_json: Path
    figure_png: Path
    markdown: Path
    scaling_csv: Path | None


def write_report(
    out_dir: Path,
    timeline: Sequence[Row],
    *,
    text: FigureText,
    scaling: Scaling | None = None,
    facts: Mapping[str, Any] | None = None,
    endpoints: Sequence[Row] = (),
    errors: Sequence[Row] = (),
    notes: Sequence[str] = (),
) -> tuple[ReportFiles, Verdicts]:
    """Write every report file into `out_dir` (created); return their paths and the verdicts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        directory=out_dir,
        timeline_csv=out_dir / "timeline.csv",
        summary_json=out_dir / "summary.json",
        figure_png=out_dir / "timeline.png",
        markdown=out_dir / "report.md",
        scaling_csv=out_dir / f"replicas-{scaling.source}.csv" if scaling else None,
    )
    verdicts = compute_verdicts(timeline, scaling)
    write_timeline_csv(files.timeline_csv, timeline)
    if scaling is not None and files.scaling_csv is not None:
        write_scaling_csv(files.scaling_csv, scaling)
    plot_timeline(files.figure_png, timeline, scaling, text=text)
    write_markdown(
        files.markdown,
        verdicts,
        scaling,
        title=text.title,
        facts=facts or {},
        endpoints=endpoints,
        notes=[*notes, *(f"error x{e['occurrences']}: {e['name']}: {e['error']}" for e in errors)],
        figure=files.figure_png.name,
    )
    summary = {
        "title": text.title,
        "facts": dict(facts or {}),
        "verdicts": asdict(verdicts),
        "scaling": None
        if scaling is None
        else {k: v for k, v in asdict(scaling).items() if k != "points"} | {"points": len(scaling.points)},
        "endpoints": list(endpoints),
        "errors": list(errors),
        "notes": list(notes),
        "files": {k: v.name for k, v in asdict(files).items() if isinstance(v, Path) and k != "directory"},
    }
    files.summary_json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return files, verdicts
