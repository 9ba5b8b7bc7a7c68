"""`python -m loadtest canary` (`make canary`): rehearse the rendered canary on this machine, no cluster.

Renders the chart with the given values files, starts both slots as their rendered pods would, a real nginx
routing as the rendered HTTPRoute (or ingress-nginx canary Ingress) says, a real Prometheus scraping as the
rendered ServiceMonitor says; drives locust traffic through nginx, with and without the canary header; then
judges the AnalysisTemplate's own PromQL by Argo Rollouts' rules and writes reports/<timestamp>/canary.md.

Exit status: 0 when the routing agrees with the configuration (share interval holds the weight, header rule
100 %, every response names its version) and the verdict is the one `--expect`ed (if given); 1 otherwise;
2 when the release cannot be rehearsed (the message names the object or value).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from loadtest.canary import analysis, nginx, prometheus, rehearsal, report, topology
from loadtest.chart import release
from loadtest.chart.localpod import LocalPodError
from loadtest.commands.demo import sigterm_as_interrupt
from loadtest.report import load_run

DEFAULT_VALUES = "values-canary.yaml"


def _key_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def configure(parser: argparse.ArgumentParser) -> None:
    """The command's arguments on `parser` (`python -m loadtest canary`)."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    defaults = rehearsal.Options()
    parser.add_argument(
        "--values", "-f", action="append", default=None,
        help=f"values file, repeatable like helm -f (default: {DEFAULT_VALUES})",
    )  # fmt: skip
    parser.add_argument(
        "--manifest", type=Path, default=None,
        help="rehearse these rendered objects (helm template output) instead of rendering --values",
    )  # fmt: skip
    parser.add_argument("--duration", type=float, default=defaults.duration_s, help="seconds of load")
    parser.add_argument("--users", type=int, default=defaults.users, help="locust users")
    parser.add_argument("--user-rps", type=float, default=defaults.user_rps, help="requests/s per user")
    parser.add_argument(
        "--header-fraction", type=float, default=defaults.header_fraction,
        help="fraction of the users that send the canary header",
    )  # fmt: skip
    parser.add_argument(
        "--confidence", type=float, default=defaults.confidence, help="of the share's Wilson interval"
    )
    parser.add_argument("--candidate", default=None, help="candidate slot (default: the header rule's)")
    parser.add_argument(
        "--candidate-error-rate", type=float, default=0.0,
        help="start the candidate with MODEL_API_REHEARSAL_ERROR_RATE (0-1): a bad model",
    )  # fmt: skip
    parser.add_argument(
        "--candidate-latency-ms", type=float, default=0.0,
        help="start the candidate with MODEL_API_REHEARSAL_LATENCY_MS: a slow model",
    )  # fmt: skip
    parser.add_argument(
        "--arg", type=_key_value, action="append", default=[], metavar="NAME=VALUE",
        help="an AnalysisTemplate arg (repeatable)",
    )  # fmt: skip
    parser.add_argument("--steps", type=int, default=None, help="measurements of an unbounded metric")
    parser.add_argument("--header-value", default=None, help="header value for a regex header rule")
    parser.add_argument(
        "--expect", choices=(analysis.PROMOTE, analysis.ABORT, analysis.PAUSE), default=None,
        help="exit 1 unless the verdict is this",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("reports"), help="reports directory")
    parser.set_defaults(func=canary_command)


def options_from(args: argparse.Namespace) -> rehearsal.Options:
    for option, value, low, high in (
        ("--duration", args.duration, 1.0, 3600.0),
        ("--users", args.users, 2, 200),  # one with the canary header, one without
        ("--user-rps", args.user_rps, 0.1, 1000.0),
        ("--header-fraction", args.header_fraction, 0.0, 0.9),
        ("--confidence", args.confidence, 0.5, 0.9999),
        ("--candidate-error-rate", args.candidate_error_rate, 0.0, 1.0),
        ("--candidate-latency-ms", args.candidate_latency_ms, 0.0, 60_000.0),
    ):
        if not low <= value <= high:
            raise ValueError(f"{option} {value} must be between {low} and {high}")
    return rehearsal.Options(
        duration_s=args.duration,
        users=args.users,
        user_rps=args.user_rps,
        header_fraction=args.header_fraction,
        confidence=args.confidence,
        candidate=args.candidate,
        candidate_error_rate=args.candidate_error_rate,
        candidate_latency_ms=args.candidate_latency_ms,
        args=dict(args.arg),
        steps=args.steps,
        header_value=args.header_value,
    )


def run(
    objects: Sequence[release.Manifest], options: rehearsal.Options, out: Path, expect: str | None
) -> int:
    """Rehearse `objects`, write the report; the exit status."""
    try:
        with tempfile.TemporaryDirectory(prefix="canary-") as workdir, sigterm_as_interrupt():
            result = rehearsal.rehearse(objects, options, Path(workdir))
    except (
        topology.TopologyError, analysis.AnalysisError, rehearsal.RehearsalError, LocalPodError,
        nginx.NginxError, prometheus.PrometheusError,
    ) as error:  # fmt: skip
        print(f"error: {error}", file=sys.stderr)
        return 2
    files = report.write(load_run.report_dir(out), result)
    report.print_summary(result, files)
    failed = not report.routing_ok(result)
    if expect is not None and result.verdict != expect:
        print(f"ERROR: verdict {result.verdict}, expected {expect}", file=sys.stderr)
        failed = True
    return 1 if failed else 0


def canary_command(args: argparse.Namespace) -> int:
    try:
        options = options_from(args)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.manifest is not None:
        if args.values:
            print("error: give --manifest or --values, not both", file=sys.stderr)
            return 2
        try:
            objects = [o for o in yaml.safe_load_all(args.manifest.read_text()) if o]
        except (OSError, yaml.YAMLError) as error:
            print(f"error: reading {args.manifest}: {error}", file=sys.stderr)
            return 2
        print(f"canary rehearsal of the rendered objects in {args.manifest}")
        return run(objects, options, args.out, args.expect)
    values = args.values or [DEFAULT_VALUES]
    missing = [v for v in values if not Path(release.ROOT, v).is_file()]
    if missing:
        print(f"error: values file {missing[0]} not found", file=sys.stderr)
        return 2
    try:
        objects = release.render(release.load_values(values))
    except Exception as error:  # Helm's engine reports template and schema errors as plain exceptions
        print(f"error: rendering the chart with {values}: {error}", file=sys.stderr)
        return 2
    print(f"canary rehearsal of the chart rendered with {', '.join(values)}")
    return run(objects, options, args.out, args.expect)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest canary")
    configure(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
