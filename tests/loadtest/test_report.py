"""The report, offline: a synthetic timeline with a known HPA response → files written, verdicts computed."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from loadtest.cluster.watch import live_scaling, problems_seen
from loadtest.report.figures import FigureText, plot_strategy_replicas
from loadtest.report.files import append_section, write_report
from loadtest.report.verdicts import Scaling, ScalingPoint, compute_verdicts

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def users_at(t: int) -> int:
    """2 users from t=0, +2 at t=10, +4 at t=20, load stops at t=40; the run records until t=100."""
    if t >= 40:
        return 0
    return 2 if t < 10 else 4 if t < 20 else 8


FAILING_SECONDS = {25: 1, 26: 1, 27: 1, 35: 1}  # three while replicas change (25-27), one after (35)
HOT_LOCUST_SECONDS = (30, 31)


def synthetic_timeline() -> list[dict[str, float]]:
    rows, requests, failures = [], 0, 0
    for t in range(1, 101):  # like the runner's rows: row t covers the second (t-1, t]
        rps = users_at(t - 1)
        requests += rps
        failures += FAILING_SECONDS.get(t, 0)
        rows.append(
            {
                "t": float(t),
                "users": users_at(t - 1),
                "rps": float(rps),
                "failures_per_s": float(FAILING_SECONDS.get(t, 0)),
                "p50_ms": 5.0,
                "p95_ms": 9.0,
                "p99_ms": 12.0,
                "requests": requests,
                "failures": failures,
                "locust_cpu_percent": 95.0 if t in HOT_LOCUST_SECONDS else 20.0,
                "service_cpu_percent": 10.0 * rps,
            }
        )
    return rows


LIVE = Scaling(
    source="live",
    description="live HPA default/model-api",
    min_replicas=1,
    max_replicas=5,
    points=[
        ScalingPoint(t=0, desired=1, ready=1, utilization=20, target=60),
        ScalingPoint(t=15, desired=2, ready=1, utilization=90, target=60),
        ScalingPoint(t=20, desired=2, ready=2, utilization=55, target=60),
        ScalingPoint(t=25, desired=4, ready=2, utilization=110, target=60),
        ScalingPoint(t=30, desired=4, ready=4, utilization=58, target=60),
        ScalingPoint(t=70, desired=2, ready=4, utilization=1, target=60),
        ScalingPoint(t=75, desired=2, ready=2, utilization=1, target=60),
        ScalingPoint(t=90, desired=1, ready=1, utilization=1, target=60),
    ],
)


def test_verdicts_of_a_known_timeline() -> None:
    expected = {
        "load_start_s": 0.0,
        "load_increases_s": [0.0, 10.0, 20.0],
        "load_fell_s": 40.0,
        "baseline_replicas": 1,
        "first_scale_up_s": 15,
        "time_to_first_scale_up_s": 15.0,
        "scale_up_after_increase_s": 5.0,
        "peak_desired": 4,
        "peak_ready": 4,
        "scale_down_start_s": 70,
        "time_to_scale_down_s": 30.0,
        "back_to_baseline_s": 90,
        "requests": 2 * 10 + 4 * 10 + 8 * 20,
        "failures": 4,
        "failures_while_scaling": 3,
        "locust_cpu_peak_percent": 95.0,
        "locust_cpu_seconds_over_threshold": 2,
    }
    verdicts = compute_verdicts(synthetic_timeline(), LIVE)
    actual = {key: getattr(verdicts, key) for key in expected}
    assert actual == expected, "Verdicts fields differ from the hand-derived values"
    assert (
        len(verdicts.warnings) == 1 and "locust itself used more than 90% CPU for 2 s" in verdicts.warnings[0]
    )


def test_predicted_scaling_has_no_failures_while_scaling() -> None:
    predicted = replace(LIVE, source="predicted")
    verdicts = compute_verdicts(synthetic_timeline(), predicted)
    assert verdicts.failures_while_scaling is None, "Verdicts.failures_while_scaling for predicted scaling"
    assert verdicts.first_scale_up_s == 15, "Verdicts.first_scale_up_s for predicted scaling"


def test_a_run_that_never_scales_reports_none() -> None:
    flat = replace(LIVE, points=[ScalingPoint(t=float(t), desired=1, ready=1) for t in range(0, 100, 15)])
    verdicts = compute_verdicts(synthetic_timeline(), flat)
    expected = (None, None, None, 1)
    actual = (
        verdicts.first_scale_up_s,
        verdicts.scale_down_start_s,
        verdicts.time_to_scale_down_s,
        verdicts.peak_desired,
    )
    assert actual == expected, (
        "Verdicts (first_scale_up_s, scale_down_start_s, time_to_scale_down_s, peak_desired)"
    )


def test_a_run_ending_at_its_peak_falls_when_it_stops() -> None:
    rising = [row for row in synthetic_timeline() if row["t"] < 30]
    expected = 29.0  # the last row is t=29: the load stops with the run
    assert compute_verdicts(rising, None).load_fell_s == expected, (
        "Verdicts.load_fell_s of a run ending at its peak"
    )


@pytest.mark.parametrize("scaling", [LIVE, None], ids=["live", "no-hpa"])
def test_every_report_file_is_written(tmp_path: Path, scaling: Scaling | None) -> None:
    timeline = synthetic_timeline()
    endpoints = [
        {
            "name": "/api/v0/pi",
            "requests": 220,
            "failures": 4,
            "rps": 2.2,
            "p50_ms": 5,
            "p95_ms": 9,
            "p99_ms": 12,
        }
    ]
    files, _ = write_report(
        tmp_path / "run",
        timeline,
        text=FigureText("synthetic run"),
        scaling=scaling,
        facts={"host": "http://127.0.0.1:1"},
        endpoints=endpoints,
        errors=[{"name": "/api/v0/pi", "error": "wrong digits", "occurrences": 4}],
    )

    with files.timeline_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(timeline), "timeline.csv row count"
    assert rows[0].keys() >= {"t", "rps", "p95_ms", "locust_cpu_percent", "service_cpu_percent"}, (
        "timeline.csv header"
    )
    summary = json.loads(files.summary_json.read_text())
    assert summary["verdicts"]["failures"] == 4, "summary.json verdicts.failures"
    assert summary["errors"][0]["error"] == "wrong digits", "summary.json errors[0].error"
    assert files.figure_png.read_bytes()[:8] == PNG_MAGIC, "timeline.png is not a PNG"
    markdown = files.markdown.read_text()
    assert "![timeline](timeline.png)" in markdown, "report.md does not embed the figure"
    assert "WARNING" in markdown, "report.md lacks the locust CPU warning"
    if scaling is None:
        assert files.scaling_csv is None, "ReportFiles.scaling_csv without scaling"
    else:
        assert "t=15 s: 15 s after the load started, 5 s after the last load increase" in markdown, (
            "report.md scale-up"
        )
        assert files.scaling_csv is not None and files.scaling_csv.exists(), "replicas-live.csv missing"


def watcher_row(t: float, desired: int | None, ready: int, utilization: int | None, **extra: object) -> dict:
    """A timeline row with the watcher's columns (loadtest.autoscaling.watcher), as the runner records it."""
    return {
        "t": t,
        "users": 2,
        "hpa_found": True,
        "hpa_desired_replicas": desired,
        "workload_ready_replicas": ready,
        "hpa_cpu_utilization": utilization,
        "hpa_cpu_target": 50,
        "hpa_min_replicas": 1,
        "hpa_max_replicas": 4,
        **extra,
    }


def test_watcher_rows_become_the_live_replica_series() -> None:
    timeline = [
        watcher_row(1, None, 1, None, hpa_found=False, hpa_error="HPA default/x not found"),
        watcher_row(2, 1, 1, 80),
        watcher_row(3, 2, 1, 95, pod_metrics_error="metrics-server is not installed"),
        watcher_row(4, 2, 2, 48),
    ]
    expected = [
        ScalingPoint(t=2, desired=1, ready=1, utilization=80, target=50),
        ScalingPoint(t=3, desired=2, ready=1, utilization=95, target=50),
        ScalingPoint(t=4, desired=2, ready=2, utilization=48, target=50),
    ]
    scaling = live_scaling(timeline, "live HPA default/x")
    assert scaling is not None, "live_scaling() of rows with HPA state"
    assert list(scaling.points) == expected, "Scaling.points from the watcher's columns"
    assert (scaling.min_replicas, scaling.max_replicas) == (1, 4), "Scaling min/max from hpa_min/max_replicas"
    notes = problems_seen(timeline)
    assert notes == [
        "from t=1 s: HPA default/x not found",
        "from t=3 s: metrics-server is not installed",
    ], "problems_seen() notes"


def test_scale_down_counts_from_the_peak_reached_after_the_load_fell() -> None:
    """The HPA sees the load one metric window late, so it often scales up after the load fell (here: the
    load stops at t=40, desired rises 1 -> 3 at t=45): the scale-down starts when desired drops from that
    peak (t=75), not when it drops below the count at the fall (never: it returns to the minimum, 1)."""
    late = replace(
        LIVE,
        points=[
            ScalingPoint(t=0, desired=1, ready=1),
            ScalingPoint(t=45, desired=3, ready=1),
            ScalingPoint(t=60, desired=3, ready=3),
            ScalingPoint(t=75, desired=2, ready=2),
            ScalingPoint(t=90, desired=1, ready=1),
        ],
    )
    verdicts = compute_verdicts(synthetic_timeline(), late)
    expected = (40.0, 75, 35.0, 90)
    actual = (
        verdicts.load_fell_s,
        verdicts.scale_down_start_s,
        verdicts.time_to_scale_down_s,
        verdicts.back_to_baseline_s,
    )
    assert actual == expected, (
        "Verdicts (load_fell_s, scale_down_start_s, time_to_scale_down_s, back_to_baseline_s)"
    )


def test_failures_while_scaling_count_requests_not_rates() -> None:
    """The recorder's rows are ~1 s apart, not exactly: one failure over 1.01 s is failures_per_s 0.99, and
    a slow sampler can make a row span 3 s (3 failures, 1.0/s). Counts come from the cumulative column."""
    timeline = synthetic_timeline()
    for row in timeline:
        if row["failures_per_s"]:
            row["failures_per_s"] = 0.99
    late = [row for row in timeline if row["t"] not in (25, 26)]  # t=27 spans (24, 27]: three failures
    late[late.index(next(r for r in late if r["t"] == 27))]["failures_per_s"] = 1.0
    expected = (3, 3)
    actual = (
        compute_verdicts(timeline, LIVE).failures_while_scaling,
        compute_verdicts(late, LIVE).failures_while_scaling,
    )
    assert actual == expected, "Verdicts.failures_while_scaling (1.01 s rows, a 3 s row)"


def test_strategy_panel_and_section_are_added_to_the_report(tmp_path: Path) -> None:
    """The demo's strategy comparison: one PNG panel and a section at the end of report.md."""
    files, _ = write_report(tmp_path, [], text=FigureText("t"))
    figure = tmp_path / "strategies.png"
    plot_strategy_replicas(
        figure,
        [("CPU 70 %", [(0.0, 3), (60.0, 5)]), ("RPS 14.0/pod", [(0.0, 3), (45.0, 6)])],
        [(0.0, 30.0), (30.0, 90.0)],
        title="replicas per strategy",
    )
    append_section(
        files.markdown, "Autoscaling strategies", "strategy  pod-minutes\nCPU 70 %  12.0", figure=figure
    )
    text = files.markdown.read_text()
    expected = (True, True, True, True)
    actual = (
        figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n",
        text.rstrip().endswith("![Autoscaling strategies](strategies.png)"),
        "## Autoscaling strategies" in text,
        "CPU 70 %  12.0" in text,
    )
    assert actual == expected, "(PNG written, figure linked last, section title, table) in report.md"
