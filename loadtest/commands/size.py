"""`python -m loadtest size`: which target and maxReplicas meet a p95 goal at a peak load.

For a peak rps and a p95 goal: a table of CPU targets with the replicas they need and the predicted p95,
then the HPA predictor's check that the recommended target reaches those replicas, and how fast; then the
same question per strategy (CPU, requests/s, in flight with --latency-ms, KEDA): the highest target of each
that meets the goal at the top of the tolerance band, and the pods it needs at the peak.
Bad input exits with status 2 and a message naming the problem.
"""

from __future__ import annotations

import argparse

from loadtest.autoscaling import sizing
from loadtest.commands import hpa_options


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = f"{__doc__}\n{sizing.__doc__}"
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    hpa_options.add_release_options(parser)
    parser.add_argument("--peak-rps", required=True, type=float)
    parser.add_argument("--cpu-ms-per-request", required=True, type=float, metavar="MS")
    parser.add_argument("--target-p95-ms", required=True, type=float, help="the p95 latency goal")
    parser.add_argument("--measured-p95-ms", required=True, type=float, help="p95 measured at low load")
    parser.add_argument(
        "--latency-ms", type=float, metavar="MS", help="mean latency at low load (sizes the in-flight target)"
    )
    parser.add_argument(
        "--targets",
        default=",".join(map(str, sizing.DEFAULT_TARGETS)),
        help="CPU target utilizations to tabulate, comma-separated percents",
    )
    parser.set_defaults(func=run_size)


def run_size(args: argparse.Namespace) -> int:
    try:
        spec = hpa_options.spec_for(args.values, args.autoscaler)
        targets = _targets(args.targets)
        question = sizing.SizingInput.from_spec(
            spec,
            peak_rps=args.peak_rps,
            cpu_ms_per_request=args.cpu_ms_per_request,
            target_p95_ms=args.target_p95_ms,
            measured_p95_ms=args.measured_p95_ms,
        )
        rows = sizing.size(question, targets)
    except (hpa_options.InputError, ValueError) as exc:
        return hpa_options.bad_input(exc)
    print(hpa_options.describe_spec(spec, args.values))
    print(
        f"peak {args.peak_rps:g} rps x {args.cpu_ms_per_request:g} ms CPU = "
        f"{args.peak_rps * args.cpu_ms_per_request:.0f} millicores; p95 goal {args.target_p95_ms:g} ms "
        f"(measured {args.measured_p95_ms:g} ms at low load); "
        f"pod capacity {question.pod_capacity_millicores}m"
    )
    print(sizing.format_table(rows, args.target_p95_ms))
    print("\nper strategy (the highest target whose tolerance band still meets the goal):")
    print(sizing.format_strategy_table(sizing.size_strategies(question, args.latency_ms)))
    print()
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
        spec,
        question,
        best,
        ready_delay=args.ready_delay,
        memory_bytes_per_pod=hpa_options.memory_bytes(args),
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


def _targets(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise hpa_options.InputError(
            f"--targets must be comma-separated whole percents, got {text!r}"
        ) from None
