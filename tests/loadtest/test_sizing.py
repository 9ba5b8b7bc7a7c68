"""The sizing table (replicas, utilization, M/M/1 p95 per CPU target), its recommendation, and `size` CLI."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from loadtest.autoscaling import production, sizing
from loadtest.autoscaling.sizing import (
    SizingInput,
    SizingRow,
    predicted_p95,
    recommend,
    size,
    verify,
    with_cpu_target,
)
from loadtest.autoscaling.spec import Behavior, HpaSpec, MetricTarget
from tests.loadtest.predict_cli_helpers import run_cli, write_hpa_values

# 400 rps x 5 ms = 2000 millicores at peak; 500m request; one core per pod; p95 8 ms at low load
QUESTION = SizingInput(
    peak_rps=400,
    cpu_ms_per_request=5,
    cpu_request_millicores=500,
    target_p95_ms=12,
    measured_p95_ms=8,
    max_replicas=10,
)


@pytest.mark.parametrize(
    ("target", "replicas", "per_pod_millicores"),
    [
        (50, 8, 250.0),  # 2000 / (0.5 x 500) = 8 pods of 250m
        (70, 6, 2000 / 6),  # 2000 / 350 = 5.7 -> 6 pods of 333m
        (90, 5, 400.0),  # 2000 / 450 = 4.4 -> 5 pods of 400m
    ],
)
def test_size_rows(target: int, replicas: int, per_pod_millicores: float) -> None:
    worst_busy = 1.1 * target / 100 * 500 / 1000  # top of the tolerance band, as a fraction of one core
    expected = SizingRow(
        target_percent=target,
        replicas=replicas,
        utilization_percent=100 * per_pod_millicores / 500,
        p95_ms=8 / (1 - per_pod_millicores / 1000),
        worst_p95_ms=8 / (1 - worst_busy),
        fits_max_replicas=True,
        ok=8 / (1 - worst_busy) <= 12,
    )
    (actual,) = size(QUESTION, [target])
    assert actual == pytest.approx(expected), f"sizing row for target {target} %"


def test_recommend_takes_the_highest_target_meeting_the_goal() -> None:
    # worst-case p95: 50 % -> 8 / (1 - 0.275) = 11.0 ms <= 12; 60 % -> 8 / (1 - 0.33) = 11.9; 70 % -> 13.0
    expected = 60
    actual = recommend(size(QUESTION, [50, 60, 70, 80])).target_percent
    assert actual == expected, "recommended target percent"


def test_nothing_fits_when_max_replicas_is_too_low() -> None:
    question = SizingInput(**{**QUESTION.__dict__, "max_replicas": 4})
    rows = size(question, [50, 60])  # need 8 and 7 replicas
    actual = ([row.fits_max_replicas for row in rows], recommend(rows))
    assert actual == ([False, False], None), "(fits maxReplicas per row, recommendation) with maxReplicas 4"


def test_overload_when_a_pod_cannot_serve_its_share() -> None:
    # a 200m CPU limit caps a pod: 1.1 x 90 % x 500m = 495m of work per pod cannot be served
    question = SizingInput(**{**QUESTION.__dict__, "pod_capacity_millicores": 200})
    (row,) = size(question, [90])
    assert (math.isinf(row.worst_p95_ms), row.ok) == (True, False), "(worst p95 infinite, ok) when overloaded"


@pytest.mark.parametrize(("busy", "expected"), [(0.0, 8.0), (0.5, 16.0), (0.75, 32.0), (1.0, math.inf)])
def test_mm1_inflation(busy: float, expected: float) -> None:
    assert predicted_p95(8.0, busy) == expected, f"p95 at busy fraction {busy}"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("peak_rps", 0, "peak_rps must be"),
        ("measured_p95_ms", -1, "measured_p95_ms"),
        ("max_replicas", 0, "max_replicas"),
    ],
)
def test_bad_sizing_input(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SizingInput(**{**QUESTION.__dict__, field: value})


def one_pod_spec() -> HpaSpec:
    return HpaSpec(
        1, 10, (MetricTarget("cpu", average_utilization=80),), Behavior(), {"model-api": {"cpu": 500}}
    )


def test_with_cpu_target_replaces_target_and_max() -> None:
    expected = ((MetricTarget("cpu", average_utilization=50),), 12)
    replaced = with_cpu_target(one_pod_spec(), 50, 12)
    assert (replaced.metrics, replaced.max_replicas) == expected, (
        "(metrics, maxReplicas) after with_cpu_target"
    )


def test_verify_replays_the_step_through_the_predictor() -> None:
    # step at t=60 from 1 pod: metrics-server's 15 s window shows it fully at the t=75 sync, which adds 4
    # (1 + 4 pods), the next (t=90) the other 3; those are ready 30 s later, at t=120: 60 s after the step
    expected = (8, 60.0)
    row = size(QUESTION, [50])[0]
    check = verify(one_pod_spec(), QUESTION, row, ready_delay=30)
    assert (check.replicas_needed, check.seconds_to_needed) == expected, (
        "(replicas needed, seconds to reach them)"
    )


# --- `python -m loadtest size` ---------------------------------------------------------------------------


@pytest.fixture
def hpa_values(tmp_path: Path) -> Path:
    return write_hpa_values(tmp_path)


def test_size_command_prints_table_and_check(hpa_values: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["size", "--values", str(hpa_values), "--peak-rps", "100", "--cpu-ms-per-request", "5",
            "--target-p95-ms", "50", "--measured-p95-ms", "8"]  # fmt: skip
    status = run_cli(argv)
    out = capsys.readouterr().out
    expected = (0, True, True, True)
    actual = (
        status,
        "target %" in out,
        "recommended: CPU target" in out,
        "predictor: a step to 100 rps" in out,
    )
    assert actual == expected, f"(exit status, table, recommendation, predictor check) in:\n{out}"


def test_size_command_bad_targets_exit_2(hpa_values: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["size", "--values", str(hpa_values), "--peak-rps", "100", "--cpu-ms-per-request", "5",
            "--target-p95-ms", "50", "--measured-p95-ms", "8", "--targets", "50,lots"]  # fmt: skip
    status = run_cli(argv)
    assert (status, "--targets" in capsys.readouterr().err) == (2, True), (
        "(exit status, message names --targets)"
    )


def test_verify_accepts_a_count_the_tolerance_band_holds() -> None:
    """3000 rps x 12 ms = 36000m on 500m requests at a 90 % target: 80 pods exactly, but the HPA legitimately
    stops at 78 (92 % utilization, inside the 0.9..1.1 band), and the table's worst p95 already assumes up to
    99 %. The check asks for the fewest pods inside the band, ceil(36000 / (1.1 x 0.9 x 500)) = 73, not 80."""
    question = dataclasses.replace(QUESTION, peak_rps=3000, cpu_ms_per_request=12)
    row = size(question, [90])[0]
    check = verify(one_pod_spec(), question, row, ready_delay=30)
    expected = (80, 73, True)
    actual = (row.replicas, check.replicas_needed, check.seconds_to_needed is not None)
    assert actual == expected, "(table replicas, Verification.replicas_needed, reached) of a 90 % target"


def test_size_per_strategy_meets_the_goal_at_the_top_of_the_band() -> None:
    """300 req/s at 25 ms of CPU (a pod serves 40 req/s), p95 60 ms at low load, goal 200 ms: a pod may
    run at 28 req/s (60 / (1 - 0.7) = 200); each target leaves the 10 % band under that."""
    question = dataclasses.replace(
        QUESTION, peak_rps=300, cpu_ms_per_request=25, target_p95_ms=200, measured_p95_ms=60, max_replicas=30
    )
    rows = {r.strategy: r for r in sizing.size_strategies(question, latency_ms=30.0)}
    expected = {
        "CPU": ("127 %", 12),
        "requests/s": ("25.4 per pod", 12),
        "KEDA requests/s (to zero)": ("25.4 per pod", 12),
        "in flight": ("2.54 per pod", 12),
    }
    actual = {name: (r.target, r.replicas) for name, r in rows.items()}
    assert actual == expected, "(target, pods at the peak) per strategy"
    worst = max(r.worst_p95_ms for r in rows.values())
    assert worst <= 200, f"a target's tolerance band breaks the goal: worst p95 {worst:.1f} ms"


def test_low_load_latency_reads_the_lowest_step() -> None:
    timeline = [
        {"t": 1, "users": 2, "p50_ms": 30.0, "p95_ms": 50.0},
        {"t": 2, "users": 2, "p50_ms": 32.0, "p95_ms": 54.0},
        {"t": 3, "users": 2, "p50_ms": 34.0, "p95_ms": 58.0},
        {"t": 4, "users": 4, "p50_ms": 90.0, "p95_ms": 300.0},
    ]
    expected = (32.0, 54.0)
    assert production.low_load_latency(timeline) == expected, "(mean stand-in, p95) at the lowest step"
