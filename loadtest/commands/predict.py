"""`python -m loadtest predict`: the offline autoscaler predictor on a load curve, no cluster.

Replays a load curve (CSV with columns t,rps, or --spike BASE:PEAK) through the autoscaler rendered from
the values files (an HPA, or the HPA KEDA makes from a ScaledObject, with whichever metrics it uses: CPU,
memory, requests/s, requests in flight); prints the syncs where something changes and writes every sync to
--out (columns: SyncRow.CSV_COLUMNS).

With --compare it replays the same load under several strategies on the same measured costs (CPU 70 %,
requests/s per pod, requests in flight per pod, KEDA scaling to zero) and prints a table: time to first
scale-up, peak replicas, seconds above the p95 goal, pod-minutes, the winner of each column marked.
Bad input exits with status 2 and a message naming the problem.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from collections.abc import Sequence
from pathlib import Path

from loadtest.autoscaling import compare
from loadtest.autoscaling.pipeline import ServiceCosts
from loadtest.autoscaling.simulation import SyncRow, predict, validate_load, write_syncs_csv
from loadtest.commands import hpa_options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    hpa_options.add_release_options(parser)
    hpa_options.add_pipeline_options(parser)
    load = parser.add_mutually_exclusive_group(required=True)
    load.add_argument("--load", type=Path, help="CSV with columns t,rps (seconds, req/s)")
    load.add_argument(
        "--spike",
        metavar="BASE:PEAK",
        help="a built-in load instead: BASE req/s, PEAK from t=127 s for 300 s, then BASE again",
    )
    parser.add_argument(
        "--cpu-ms-per-request",
        required=True,
        type=float,
        metavar="MS",
        help="CPU milliseconds one request costs (measured locally)",
    )
    parser.add_argument(
        "--duration", type=float, metavar="S", help="seconds to simulate (default: last load row + 600)"
    )
    parser.add_argument("--out", type=Path, metavar="CSV", help="write every sync here")
    group = parser.add_argument_group("--compare")
    group.add_argument("--compare", action="store_true", help="compare strategies on this load (table)")
    group.add_argument("--p95-goal-ms", type=float, metavar="MS", help="the p95 latency goal")
    group.add_argument("--p95-ms", type=float, metavar="MS", help="p95 measured at low load")
    group.add_argument("--cpu-target", type=int, default=compare.DEFAULT_CPU_TARGET, help="CPU strategy's %%")
    group.add_argument("--target-rps", type=float, help="requests/s per pod (default: the CPU target's load)")
    group.add_argument("--target-in-flight", type=float, help="in flight per pod (default: at --target-rps)")
    parser.set_defaults(func=run_predict)


def load_from(args: argparse.Namespace) -> list[tuple[float, float]]:
    if args.load is not None:
        return read_load(args.load)
    try:
        base, peak = (float(part) for part in args.spike.split(":"))
    except ValueError:
        raise hpa_options.InputError(f"--spike must be BASE:PEAK requests/s, got {args.spike!r}") from None
    return validate_load(compare.spike_load(base, peak))


def run_predict(args: argparse.Namespace) -> int:
    if args.compare:
        return run_compare(args)
    try:
        spec = hpa_options.spec_for(args.values, args.autoscaler)
        load = load_from(args)
        timeline = predict(
            spec,
            load,
            args.cpu_ms_per_request,
            ready_delay=args.ready_delay,
            duration=args.duration,
            idle_millicores=args.idle_millicores,
            memory_bytes_per_pod=hpa_options.memory_bytes(args),
            latency_ms=args.latency_ms,
            pipeline=hpa_options.pipeline_from(args),
        )
    except (hpa_options.InputError, ValueError) as exc:
        return hpa_options.bad_input(exc)
    print(hpa_options.describe_spec(spec, args.values))
    print(format_timeline(timeline))
    print(summarize(timeline, load))
    stuck = compare.stuck_at_zero(spec, timeline)
    if stuck:
        print(stuck)
    if args.out:
        write_syncs_csv(args.out, timeline)
        print(f"timeline: {args.out} ({len(timeline)} syncs)")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """--compare: the strategies' table for this load and these costs."""
    try:
        if args.p95_goal_ms is None or args.p95_ms is None or args.latency_ms is None:
            raise hpa_options.InputError(
                "--compare needs --p95-goal-ms, --p95-ms and --latency-ms (measured at low load)"
            )
        spec = hpa_options.spec_for(args.values, args.autoscaler)
        load = load_from(args)
        costs = ServiceCosts(
            args.cpu_ms_per_request,
            latency_ms=args.latency_ms,
            p95_ms=args.p95_ms,
            idle_millicores=args.idle_millicores,
        )
        candidates = compare.strategies(
            spec,
            costs,
            cpu_target=args.cpu_target,
            rps_target=args.target_rps,
            in_flight_target=args.target_in_flight,
        )
        runs = compare.compare(
            candidates,
            load,
            costs,
            args.p95_goal_ms,
            ready_delay=args.ready_delay,
            duration=args.duration,
            pipeline=hpa_options.pipeline_from(args),
        )
    except (hpa_options.InputError, ValueError) as exc:
        return hpa_options.bad_input(exc)
    print(hpa_options.describe_spec(spec, args.values))
    keda = next(run.strategy.spec.keda for run in runs if run.strategy.spec.keda is not None)
    print(
        compare.describe_costs(
            costs, args.p95_goal_ms, hpa_options.pipeline_from(args), args.ready_delay, keda.polling_interval
        )
    )
    print(compare.format_table([run.score for run in runs]))
    if args.out:
        for run in runs:
            path = args.out.with_name(f"{args.out.stem}-{compare.slug(run.strategy.name)}{args.out.suffix}")
            write_syncs_csv(path, run.rows)
            print(f"timeline ({run.strategy.name}): {path}")
    return 0


def read_load(path: Path) -> list[tuple[float, float]]:
    """The load curve from a CSV with a header containing t and rps; errors name the line and column."""
    if not path.is_file():
        raise hpa_options.InputError(f"load file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {"t", "rps"} - set(reader.fieldnames or [])
            if missing:
                raise hpa_options.InputError(
                    f"{path}: missing column(s) {', '.join(sorted(missing))}; the header must name t,rps"
                )
            rows, lines = [], []
            for record in reader:  # blank lines are skipped: line_num is the record's line in the file
                try:
                    rows.append((float(record["t"]), float(record["rps"])))
                except (TypeError, ValueError):
                    raise hpa_options.InputError(
                        f"{path} line {reader.line_num}: t and rps must be numbers, got {record}"
                    ) from None
                lines.append(reader.line_num)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise hpa_options.InputError(f"{path}: not a UTF-8 CSV file with columns t,rps ({exc})") from None
    try:
        return validate_load(rows, row_name=lambda index: f"line {lines[index]}")
    except ValueError as exc:
        raise hpa_options.InputError(f"{path}: {exc}") from None


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
