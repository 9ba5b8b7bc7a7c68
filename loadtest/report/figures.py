"""The report's figure: load and p95 latency, replicas, CPU against the target, on one time axis (PNG)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window: runs headless in CI and over SSH

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from loadtest.report.verdicts import LOCUST_CPU_WARNING_PERCENT, Row, Scaling

LEGEND_HEADROOM = 1.3
STRATEGY_STYLES = (
    {"lw": 4.0, "ls": "-", "alpha": 0.55},
    {"lw": 2.6, "ls": "-"},
    {"lw": 1.8, "ls": "--"},
    {"lw": 1.4, "ls": "-."},
)
# (legend, timeline column, colour) of the CPU panel when no HPA is watched
PROCESS_CPU_SERIES = (
    ("locust (load generator)", "locust_cpu_percent", "tab:gray"),
    ("service process", "service_cpu_percent", "tab:red"),
)


@dataclass(frozen=True)
class FigureText:
    """The figure's words: its title, the load panel's title, the time axis label, the requests/s legend."""

    title: str
    load: str = "Load: requests/s and p95 latency of each 1 s window"
    time_axis: str = "time since the load started (s)"
    rps_legend: str = "requests/s"


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


def plot_strategy_replicas(
    path: Path,
    series: Sequence[tuple[str, Sequence[tuple[float, int]]]],
    load: Sequence[tuple[float, float]],
    *,
    title: str,
    time_axis: str = "time (s)",
) -> None:
    """One panel: the replica count over time of each strategy (steps), the load they answer behind."""
    fig, ax = plt.subplots(figsize=(11, 5.4))
    ax.set_title(title, loc="left", fontsize=11)
    load_ax = ax.twinx()
    end = max((points[-1][0] for _, points in series if points), default=1.0)
    load_t = [t for t, _ in load] + [end]
    load_ax.step(
        load_t,
        [r for _, r in load] + [load[-1][1] if load else 0],
        where="post",
        color="gray",
        lw=1,
        ls=":",
        label="requests/s (right axis)",
    )
    load_ax.set_ylabel("requests/s", color="gray")
    load_ax.set_ylim(bottom=0)
    for index, (name, points) in enumerate(series):
        # wide solid lines under narrow dashed ones: strategies that agree stay visible on top of each other
        style = STRATEGY_STYLES[index % len(STRATEGY_STYLES)]
        ax.step(
            [t for t, _ in points],
            [r for _, r in points],
            where="post",
            color=f"C{index}",
            label=name,
            **style,
        )
    ax.set_ylabel("replicas")
    ax.set_xlabel(time_axis)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(0, end)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + load_ax.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
