"""`python -m loadtest predict` and `python -m loadtest size`: the offline HPA predictor and the sizing table.

predict: replays a load curve (CSV with columns t,rps) through the HPA rendered from the values files;
prints the syncs where something changes and writes every sync to --out (columns: SyncRow.CSV_COLUMNS).
size: for a peak rps and a p95 goal, a table of CPU targets with the replicas they need and the predicted
p95, then the HPA predictor's check that the recommended target reaches those replicas, and how fast.
Bad input exits with status 2 and a message naming the problem.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtest.autoscaling import sizing
from loadtest.autoscaling.spec import HpaSpec, SyncRow, predict, validate_load
from loadtest.chart import release

BAD_INPUT = 2


class InputError(ValueError):
    """Bad command-line input: reported on stderr, exit status 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    predict_parser = subparsers.add_parser(
        "predict", help="predict the HPA's replicas for a load curve (no cluster)", description=__doc__
    )
    _add_release_options(predict_parser)
    predict_parser.add_argument(
        "--load", required=True, type=Path, help="CSV with columns t,rps (seconds, req/s)"
    )
    predict_parser.add_argument(
        "--cpu-ms-per-request",
        required=True,
        type=float,
        metavar="MS",
        help="CPU milliseconds one request costs (measured locally)",
    )
    predict_parser.add_argument(
        "--duration", type=float, metavar="S", help="seconds to simulate (default: last load row + 600)"
    )
    predict_parser.add_argument("--out", type=Path, metavar="CSV", help="write every sync here")
    predict_parser.set_defaults(func=run_predict)

    size_parser = subparsers.add_parser(
        "size",
        help="which CPU target and maxReplicas meet a p95 goal at peak",
        description=sizing.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_release_options(size_parser)
    size_parser.add_argument("--peak-rps", required=True, type=float)
    size_parser.add_argument("--cpu-ms-per-request", required=True, type=float, metavar="MS")
    size_parser.add_argument("--target-p95-ms", required=True, type=float, help="the p95 latency goal")
    size_parser.add_argument("--measured-p95-ms", required=True, type=float, help="p95 measured at low load")
    size_parser.add_argument(
        "--targets",
        default=",".join(map(str, sizing.DEFAULT_TARGETS)),
        help="CPU target utilizations to tabulate, comma-separated percents",
    )
    size_parser.set_defaults(func=run_size)


def _add_release_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--values",
        action="append",
        required=True,
        metavar="FILE",
        help="values file, like helm -f (repeatable; later files win)",
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


def run_predict(args: argparse.Namespace) -> int:
    try:
        spec = spec_for(args.values)
        load = read_load(args.load)
        timeline = predict(
            spec,
            load,
            args.cpu_ms_per_request,
            ready_delay=args.ready_delay,
            duration=args.duration,
            idle_millicores=args.idle_millicores,
            memory_bytes_per_pod=_memory_bytes(args),
        )
    except (InputError, ValueError) as exc:
        return _bad_input(exc)
    print(describe_spec(spec, args.values))
    print(format_timeline(timeline))
    print(summarize(timeline, load))
    if args.out:
        write_timeline(timeline, args.out)
        print(f"timeline: {args.out} ({len(timeline)} syncs)")
    return 0


def run_size(args: argparse.Namespace) -> int:
    try:
        spec = spec_for(args.values)
        targets = _targets(args.targets)
        question = sizing.SizingInput.from_spec(
            spec,
            peak_rps=args.peak_rps,
            cpu_ms_per_request=args.cpu_ms_per_request,
            target_p95_ms=args.target_p95_ms,
            measured_p95_ms=args.measured_p95_ms,
        )
        rows = sizing.size(question, targets)
    except (InputError, ValueError) as exc:
        return _bad_input(exc)
    print(describe_spec(spec, args.values))
    print(
        f"peak {args.peak_rps:g} rps x {args.cpu_ms_per_request:g} ms CPU = "
        f"{args.peak_rps * args.cpu_ms_per_request:.0f} millicores; p95 goal {args.target_p95_ms:g} ms "
        f"(measured {args.measured_p95_ms:g} ms at low load); "
        f"pod capacity {question.pod_capacity_millicores}m"
    )
    print(sizing.format_table(rows, args.target_p95_ms))
    best = sizing.recommend(rows)
    if best is None:
        fine = sizing.latency_ok_rows(rows, args.target_p95_ms)
        if fine:
            needed = max(fine, key=lambda r: r.target_percent)
            print(
                f"no target fits maxReplicas {spec.max_replicas}: raise maxReplicas to {needed.replicas} "
                f"with target {needed.target_percent} %"
            )
            best = needed
        else:
            print(
                "no CPU target meets the p95 goal: a pod's own latency at this load is too high "
                "(lower the per-request cost or the goal, or raise the pod's CPU)"
            )
            return 1
    else:
        print(f"recommended: CPU target {best.target_percent} %, maxReplicas >= {best.replicas}")
    check = sizing.verify(
        spec, question, best, ready_delay=args.ready_delay, memory_bytes_per_pod=_memory_bytes(args)
    )
    if check.seconds_to_needed is None:
        print(
            f"predictor: the HPA does NOT reach {check.replicas_needed} ready replicas after a step "
            "to the peak "
            f"(peak {check.peak_ready_replicas}, maxReplicas {check.max_replicas})"
        )
        return 1
    print(
        f"predictor: a step to {args.peak_rps:g} rps reaches {check.replicas_needed} ready replicas "
        f"(utilization inside the HPA's tolerance band) in {check.seconds_to_needed:.0f} s "
        f"(target {check.target_percent} %, maxReplicas {check.max_replicas})"
    )
    return 0


def _bad_input(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return BAD_INPUT


def _memory_bytes(args: argparse.Namespace) -> float | None:
    return None if args.memory_mib_per_pod is None else args.memory_mib_per_pod * 2**20


def _targets(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--targets must be comma-separated whole percents, got {text!r}") from None


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


def spec_for(values_files: Sequence[str]) -> HpaSpec:
    """The HPA spec of the chart rendered with these values files."""
    values = release.load_values(resolve_values(values_files))
    try:
        objects = release.render(values)
    except Exception as exc:  # the Helm engine reports template and schema errors as its own exceptions
        raise InputError(f"rendering the chart with {', '.join(values_files)} failed: {exc}") from exc
    return HpaSpec.from_release(objects)


def read_load(path: Path) -> list[tuple[float, float]]:
    """The load curve from a CSV with a header containing t and rps; errors name the line and column."""
    if not path.is_file():
        raise InputError(f"load file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {"t", "rps"} - set(reader.fieldnames or [])
            if missing:
                raise InputError(
                    f"{path}: missing column(s) {', '.join(sorted(missing))}; the header must name t,rps"
                )
            rows, lines = [], []
            for record in reader:  # blank lines are skipped: line_num is the record's line in the file
                try:
                    rows.append((float(record["t"]), float(record["rps"])))
                except (TypeError, ValueError):
                    raise InputError(
                        f"{path} line {reader.line_num}: t and rps must be numbers, got {record}"
                    ) from None
                lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a UTF-8 CSV file with columns t,rps ({exc})") from None
    try:
        return validate_load(rows, row_name=lambda index: f"line {lines[index]}")
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None


def describe_spec(spec: HpaSpec, values_files: Sequence[str]) -> str:
    metrics = ", ".join(
        f"{m.resource} {m.average_utilization} %"
        if m.average_utilization is not None
        else f"{m.resource} {m.average_value_milli}m average"
        for m in spec.metrics
    )
    request = spec.container_requests[spec.main_container].get("cpu")
    behavior = "controller defaults (behavior unset)" if spec.behavior is None else _describe_behavior(spec)
    return (
        f"HPA {spec.name} ({', '.join(values_files)}): replicas {spec.min_replicas}..{spec.max_replicas}, "
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


def format_timeline(timeline: Sequence[SyncRow]) -> str:
    """The syncs where the load, the replica counts or the controller's reason change."""
    lines = [f"{'t':>7} {'rps':>8} {'replicas':>8} {'ready':>5} {'desired':>7} {'cpu %':>6}  reason"]
    previous: tuple | None = None
    for row in timeline:
        state = (row.rps, row.replicas, row.ready_replicas, row.desired, row.reason)
        if state == previous:
            continue
        previous = state
        utilization = "-" if row.utilization is None else str(row.utilization)
        lines.append(
            f"{row.t:>7.0f} {row.rps:>8g} {row.replicas:>8} {row.ready_replicas:>5} {row.desired:>7} "
            f"{utilization:>6}  {row.reason}"
        )
    return "\n".join(lines)


def summarize(timeline: Sequence[SyncRow], load: Sequence[tuple[float, float]]) -> str:
    """Peak replicas; first scale-up (from the first load rise and from the last rise before it); last load
    fall to last scale-down.

    Rises and falls are read from the load curve (0 rps before its first row), not from the syncs: a step
    between two syncs happened before the sync that first shows it.
    """
    steps = list(itertools.pairwise([(0.0, 0.0), *load]))
    rises = [t for (_, before), (t, rps) in steps if rps > before]
    falls = [t for (_, before), (t, rps) in steps if rps < before]
    ups = [row.t for row in timeline if row.desired > row.replicas]
    downs = [row.t for row in timeline if row.desired < row.replicas]
    parts = [
        f"peak replicas {max(r.replicas for r in timeline)} (ready {max(r.ready_replicas for r in timeline)})"
    ]
    if rises:
        first_up = next((t for t in ups if t >= rises[0]), None)
        if first_up is None:
            parts.append("no scale-up after the load rose")
        else:
            rose = max(t for t in rises if t <= first_up)
            parts.append(
                f"first scale-up at t={first_up:g} s: {first_up - rises[0]:.0f} s after the load first rose, "
                f"{first_up - rose:.0f} s after the last rise before it (t={rose:g} s)"
            )
    if falls:
        last_down = max((t for t in downs if t >= falls[-1]), default=None)
        parts.append(
            "no scale-down after the load fell"
            if last_down is None
            else f"last scale-down {last_down - falls[-1]:.0f} s after the load fell (t={falls[-1]:g} s)"
        )
    return "; ".join(parts)


def write_timeline(timeline: Sequence[SyncRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SyncRow.CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(row.as_csv_row() for row in timeline)
