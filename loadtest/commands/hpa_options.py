"""What `predict` and `size` share: the values files to render the HPA from, the workload model's options,
and bad input reported as exit status 2 with a message naming the problem."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtest.autoscaling import pipeline
from loadtest.autoscaling.spec import HpaSpec
from loadtest.chart import release

BAD_INPUT = 2


class InputError(ValueError):
    """Bad command-line input: reported on stderr, exit status 2."""


def add_release_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--values",
        action="append",
        required=True,
        metavar="FILE",
        help="values file, like helm -f (repeatable; later files win)",
    )
    parser.add_argument(
        "--autoscaler",
        metavar="NAME",
        help="with rollout slots (one HPA or ScaledObject per running slot): the one to replay",
    )
    parser.add_argument(
        "--ready-delay",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds from a pod's start to Ready (default 30)",
    )
    parser.add_argument("--idle-millicores", type=float, default=0.0, help="CPU a pod uses with no traffic")
    parser.add_argument(
        "--memory-mib-per-pod",
        type=float,
        help="steady memory per pod (needed only when the HPA also scales on memory)",
    )


def bad_input(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return BAD_INPUT


def memory_bytes(args: argparse.Namespace) -> float | None:
    return None if args.memory_mib_per_pod is None else args.memory_mib_per_pod * 2**20


def resolve_values(files: Sequence[str]) -> list[Path]:
    """Each values file as given (relative to the working directory) or relative to the project root."""
    resolved = []
    for name in files:
        candidates = [Path(name), release.ROOT / name]
        found = next((p.resolve() for p in candidates if p.is_file()), None)
        if found is None:
            raise InputError(f"values file not found: {name}")
        resolved.append(found)
    return resolved


def spec_for(values_files: Sequence[str], autoscaler: str | None = None) -> HpaSpec:
    """The HPA spec of the chart rendered with these values files."""
    values = release.load_values(resolve_values(values_files))
    try:
        objects = release.render(values)
    except Exception as exc:  # the Helm engine reports template and schema errors as its own exceptions
        raise InputError(f"rendering the chart with {', '.join(values_files)} failed: {exc}") from exc
    return HpaSpec.from_release(objects, autoscaler)


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """The metric pipeline's delays and the measured latency (loadtest/autoscaling/pipeline.py)."""
    parser.add_argument(
        "--metrics-window",
        type=float,
        default=pipeline.METRICS_SERVER_WINDOW,
        metavar="S",
        help=f"metrics-server's CPU window (default {pipeline.METRICS_SERVER_WINDOW:g}: --metric-resolution)",
    )
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=pipeline.SCRAPE_INTERVAL,
        metavar="S",
        help=f"Prometheus scrape interval of the service's own series (default {pipeline.SCRAPE_INTERVAL:g}: "
        "the chart's serviceMonitor.interval); rate() windows and KEDA's polling are read from the release",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        metavar="MS",
        help="mean latency per request at low load (needed when a metric counts requests in flight)",
    )


def pipeline_from(args: argparse.Namespace) -> pipeline.MetricPipeline:
    try:
        return pipeline.MetricPipeline(args.metrics_window, args.scrape_interval)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def describe_spec(spec: HpaSpec, values_files: Sequence[str]) -> str:
    metrics = ", ".join(m.describe() for m in spec.metrics)
    request = spec.container_requests[spec.main_container].get("cpu")
    behavior = "controller defaults (behavior unset)" if spec.behavior is None else _describe_behavior(spec)
    keda = ""
    if spec.keda is not None:
        keda = (
            f" (made by KEDA: minReplicaCount {spec.keda.min_replica_count}, polling every "
            f"{spec.keda.polling_interval:g} s, cooldown {spec.keda.cooldown_period:g} s)"
        )
    return (
        f"HPA {spec.name}{keda} ({', '.join(values_files)}): "
        f"replicas {spec.min_replicas}..{spec.max_replicas}, "
        f"targets {metrics}, CPU request {request}m; behavior: {behavior}"
    )


def _describe_behavior(spec: HpaSpec) -> str:
    assert spec.behavior is not None
    parts = []
    for direction, rules in (("up", spec.behavior.scale_up), ("down", spec.behavior.scale_down)):
        window = (
            "300 (flag)" if rules.stabilization_window_seconds is None else rules.stabilization_window_seconds
        )
        policies = " ".join(
            f"{p.value}{'%' if p.type == 'Percent' else ' pods'}/{p.period_seconds}s" for p in rules.policies
        )
        parts.append(f"{direction} {rules.select_policy}({policies}) window {window}s")
    return "; ".join(parts)
