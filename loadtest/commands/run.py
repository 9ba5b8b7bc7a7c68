"""`python -m loadtest run`: a load shape against a URL, recorded once a second, written as a report.

Environment → create_local_runner() → start_shape(); the shape greenlet ends the load (the runner waits on
it, then quits: joining runner.greenlet would hang). A recorder greenlet samples every second: requests/s,
failures/s, p50/p95/p99 of that one-second window (from the delta of locust's response-time histogram, not
the cumulative percentiles), users, locust's own CPU, and whatever the optional samplers return (a local
process's CPU with --service-pid, the HPA watcher's row with --watch-hpa).

Before the load, the target's readiness path must answer 200 within a few seconds: a dead or wrong host
fails at once, naming the host and the error. The report lists every failure reason with its count.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

import locust  # noqa: F401  # first of ours: locust's gevent patching must precede any ssl import

from loadtest.chart.release import DEFAULT_RELEASE
from loadtest.cluster import watch
from loadtest.cluster.context import ClusterError
from loadtest.load.runner import configured_users, console_progress, run_load
from loadtest.load.samplers import ProcessCpuSampler, Sampler
from loadtest.load.shapes import SHAPES, BoundedShape, ShapeParameterError, all_parameters
from loadtest.load.target import READY_PATH, TargetUnavailable, check_target
from loadtest.load.users import USER_CLASSES, api_key_headers
from loadtest.report.load_run import print_summary, report_dir, write_run_report

INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)
BAD_INPUT = 2
UNREACHABLE = 1


def shape_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> BoundedShape:
    """The chosen shape with LOADTEST_* variables, then the command line's shape options, applied."""
    shape_class = SHAPES[args.shape]
    given = {name: getattr(args, name) for name in all_parameters() if getattr(args, name, None) is not None}
    foreign = sorted(set(given) - set(shape_class.parameters))
    if foreign:
        options = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise ShapeParameterError(
            f"the {args.shape} shape has no parameter {options}; it takes {sorted(shape_class.parameters)}"
        )
    return shape_class.from_env(environ, **given)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The shape, its parameters, users and their request cost."""
    parser.add_argument("--shape", choices=sorted(SHAPES), default="step", help="load shape (default: step)")
    for name, kind in all_parameters().items():
        shapes = ", ".join(s for s, cls in SHAPES.items() if name in cls.parameters)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=None,
            help=f"shape parameter ({shapes}); env LOADTEST_{name.upper()}",
        )
    parser.add_argument("--user-rps", type=float, default=None, help="requests/s per user (0: no wait)")
    parser.add_argument(
        "--pi-ndigits", type=int, default=None, help="digits of pi per request (the CPU cost)"
    )
    parser.add_argument("--batch-rows", type=int, default=None, help="rows per batched V2 infer request")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--host", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    add_load_options(parser)
    parser.add_argument(
        "--user",
        dest="user_names",
        action="append",
        choices=sorted(USER_CLASSES),
        help="user class; repeat for several (default: all)",
    )
    parser.add_argument("--tags", nargs="+", default=None, help="only run tasks with these locust tags")
    parser.add_argument(
        "--cooldown", type=float, default=0.0, help="seconds to keep recording after the load"
    )
    parser.add_argument(
        "--ready-path", default=READY_PATH, help=f"checked for 200 before the load (default {READY_PATH})"
    )
    parser.add_argument("--service-pid", type=int, default=None, help="record this local process's CPU")
    parser.add_argument("--watch-hpa", action="store_true", help="record the release's HPA once a second")
    parser.add_argument("--namespace", default=None, help="the release's namespace (default: the context's)")
    parser.add_argument(
        "--release", default=DEFAULT_RELEASE, help=f"release name (default: {DEFAULT_RELEASE})"
    )
    parser.add_argument("--context", default=None, help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--out", type=Path, default=Path("reports"), help="reports directory (default: reports/)"
    )
    parser.set_defaults(func=run_command)


def check_host(host: str) -> None:
    """A base URL locust can request: http(s)://host[:port][/path]; a clear error otherwise."""
    parsed = urllib.parse.urlsplit(host)
    try:
        parsed.port  # noqa: B018  # raises on a port that is not a number in 0-65535
    except ValueError:
        parsed = parsed._replace(netloc="")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"--host {host!r} must be a base URL such as http://127.0.0.1:8080")


def run_command(args: argparse.Namespace) -> int:
    try:
        check_host(args.host)
        shape = shape_from_args(args)
        users = configured_users(
            args.user_names or list(USER_CLASSES),
            user_rps=args.user_rps,
            pi_ndigits=args.pi_ndigits,
            batch_rows=args.batch_rows,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    if not (math.isfinite(args.cooldown) and args.cooldown >= 0):
        print(f"error: --cooldown {args.cooldown} must be a finite number of seconds >= 0", file=sys.stderr)
        return BAD_INPUT
    try:
        check_target(args.host, ready_path=args.ready_path, headers=api_key_headers(os.environ))
    except TargetUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UNREACHABLE
    samplers: list[Sampler] = []
    if args.service_pid is not None:
        samplers.append(ProcessCpuSampler(args.service_pid))
    watcher = None
    if args.watch_hpa:
        try:
            watcher = watch.connect_watcher(args.namespace, args.release, args.context)
            watch.wait_for_metrics(watcher)
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return BAD_INPUT
        samplers.append(watcher.sample)
    print(f"{type(shape).__name__} {shape.describe()} against {args.host}: {[u.__name__ for u in users]}")
    run = run_load(
        args.host,
        shape,
        users,
        samplers=samplers,
        cooldown=args.cooldown,
        tags=args.tags,
        progress=console_progress(),
    )
    scaling, notes = None, []
    if watcher is not None:
        scaling = watch.live_scaling(run.timeline, f"live HPA {watcher.namespace}/{watcher.hpa_name}")
        notes = watch.problems_seen(run.timeline)
    if run.interrupted:
        notes = [*notes, "interrupted (Ctrl-C) before the shape's end: the timeline is the run up to then"]
    files, verdicts = write_run_report(
        report_dir(args.out), run, host=args.host, scaling=scaling, notes=notes
    )
    print_summary(verdicts, scaling, files, errors=run.errors)
    if run.interrupted:
        return INTERRUPTED
    if run.requests == 0:  # e.g. a server that accepts connections and never answers
        print(f"error: no request to {args.host} completed during the run", file=sys.stderr)
        return 1
    return 1 if run.failures else 0
