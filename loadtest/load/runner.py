"""`python -m loadtest run`: locust in library mode, recorded once a second, written as a report.

Environment → create_local_runner() → start_shape(); the shape greenlet ends the load (the runner waits on
it, then quits: joining runner.greenlet would hang). A recorder greenlet samples every second: requests/s,
failures/s, p50/p95/p99 of that one-second window (from the delta of locust's response-time histogram, not
the cumulative percentiles), users, locust's own CPU, and whatever the optional samplers return (the service
process's CPU in the offline demo, the HPA watcher's row with a cluster).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import psutil
from locust import User
from locust.env import Environment
from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

from loadtest.load.shapes import SHAPES, BoundedShape, ShapeParameterError
from loadtest.load.users import USER_CLASSES, ApiUser, pacing
from loadtest.report import files as report

Sample = Mapping[str, Any]
Sampler = Callable[[], Sample]
PERCENTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}
PROGRESS_EVERY_S = 10
INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)


class ProcessCpuSampler:
    """CPU of a process and all its descendants (a local service and its pi worker process), as % of one
    core over each interval. A descendant counts from the first sample that sees it, and keeps counting with
    the CPU last read once it has exited (a replaced worker), so the total never goes down."""

    def __init__(self, pid: int, prefix: str = "service") -> None:
        self.process = psutil.Process(pid)
        self.prefix = prefix
        self._last: tuple[float, float] | None = None
        self._descendants: dict[tuple[int, float], float] = {}  # (pid, create time) -> CPU seconds

    def cpu_seconds(self) -> float:
        """CPU seconds so far; psutil.NoSuchProcess once the process itself has exited."""
        own = self.process.cpu_times()  # without children_user/system: exited descendants are counted below
        for child in self.process.children(recursive=True):
            try:
                times = child.cpu_times()
                self._descendants[(child.pid, child.create_time())] = times.user + times.system
            except psutil.NoSuchProcess:  # exited between listing and reading: keeps its last reading
                continue
        return own.user + own.system + sum(self._descendants.values())

    def __call__(self) -> Sample:
        now, used = time.monotonic(), self.cpu_seconds()
        last, self._last = self._last, (now, used)
        percent = None if last is None else round(100.0 * (used - last[1]) / max(now - last[0], 1e-6), 1)
        return {f"{self.prefix}_cpu_percent": percent, f"{self.prefix}_cpu_seconds": round(used, 3)}


class WindowStats:
    """Per-interval statistics from locust's cumulative totals: differences between two snapshots."""

    def __init__(self, environment: Environment) -> None:
        self.stats = environment.stats
        self._requests, self._failures, self._times = 0, 0, {}

    def sample(self, interval: float) -> dict[str, float | int | None]:
        total = self.stats.total  # looked up each time: locust replaces it when the test (re)starts
        requests, failures = total.num_requests, total.num_failures
        if requests < self._requests:  # the statistics were reset: count from zero again
            self._requests, self._failures, self._times = 0, 0, {}
        times = dict(total.response_times)
        window = diff_response_time_dicts(times, self._times)
        window_requests = requests - self._requests
        row: dict[str, float | int | None] = {
            "rps": round(window_requests / interval, 3),
            "failures_per_s": round((failures - self._failures) / interval, 3),
            "requests": requests,
            "failures": failures,
        }
        for column, percent in PERCENTILES.items():
            counted = sum(window.values())
            row[column] = calculate_response_time_percentile(window, counted, percent) if counted else None
        self._requests, self._failures, self._times = requests, failures, times
        return row


@dataclass
class Recorder:
    """Samples the run once a second into `rows`, in a greenlet next to locust's."""

    environment: Environment
    samplers: Sequence[Sampler] = ()
    interval: float = 1.0
    progress: Callable[[dict[str, Any]], None] | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    sampler_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._window = WindowStats(self.environment)
        self._own = psutil.Process()
        self._greenlet: gevent.Greenlet | None = None
        self._started = 0.0

    def start(self) -> None:
        self._own.cpu_percent(None)  # the first call only sets the reference point
        for sampler in self.samplers:
            self._sample_safely(sampler)
        self._started = time.monotonic()
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=True)
            self._greenlet = None

    def _loop(self) -> None:
        ticks, last = 0, 0.0
        while True:
            # The next whole tick; ticks missed while a slow sampler (the cluster API) ran are skipped.
            ticks = max(ticks + 1, math.floor((time.monotonic() - self._started) / self.interval) + 1)
            gevent.sleep(max(0.0, self._started + ticks * self.interval - time.monotonic()))
            now = round(time.monotonic() - self._started, 2)
            row = self.sample(now, now - last)
            last = now
            self.rows.append(row)
            if self.progress is not None:
                self.progress(row)

    def sample(self, t: float, interval: float) -> dict[str, Any]:
        """One row: `t` seconds since the start, rates over the `interval` seconds before it."""
        runner = self.environment.runner
        row: dict[str, Any] = {"t": t, "users": runner.user_count if runner else 0}
        row.update(self._window.sample(max(interval, 1e-3)))
        row["locust_cpu_percent"] = self._own.cpu_percent(None)
        for sampler in self.samplers:
            row.update(self._sample_safely(sampler))
        return row

    def _sample_safely(self, sampler: Sampler) -> Sample:
        # A watcher hiccup (API timeout) must not end the load test; it is reported with the run instead.
        try:
            return sampler()
        except Exception as exc:
            message = (
                f"{getattr(sampler, '__qualname__', type(sampler).__name__)}: {type(exc).__name__}: {exc}"
            )
            if message not in self.sampler_errors:
                self.sampler_errors.append(message)
                print(f"warning: sampler failed (kept running): {message}", file=sys.stderr)
            return {}


@dataclass
class LoadRun:
    """What a run produced: the per-second timeline and locust's totals per endpoint."""

    timeline: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    user_classes: list[str]
    shape: dict[str, float]
    sampler_errors: list[str]
    interrupted: bool = False  # stopped by Ctrl-C before the shape's end

    @property
    def requests(self) -> int:
        return sum(e["requests"] for e in self.endpoints)

    @property
    def failures(self) -> int:
        return sum(e["failures"] for e in self.endpoints)


def configured_users(
    names: Iterable[str],
    *,
    user_rps: float | None = None,
    pi_ndigits: int | None = None,
    batch_rows: int | None = None,
    api_key: str | None = None,
) -> list[type[User]]:
    """The chosen user classes, subclassed with this run's pacing and request cost (originals untouched)."""
    for option, value, minimum in (
        ("--user-rps", user_rps, 0),
        ("--pi-ndigits", pi_ndigits, 0),
        ("--batch-rows", batch_rows, 1),
    ):
        if value is not None and not (math.isfinite(value) and value >= minimum):
            raise ValueError(f"{option} {value} must be a finite number >= {minimum}")
    chosen = []
    for name in names:
        if name not in USER_CLASSES:
            raise ValueError(f"unknown user {name!r}; choose from {sorted(USER_CLASSES)}")
        base: type[ApiUser] = USER_CLASSES[name]
        overrides: dict[str, Any] = {}
        if user_rps is not None:
            overrides["wait_time"] = pacing(user_rps)
        if pi_ndigits is not None and hasattr(base, "ndigits"):
            overrides["ndigits"] = pi_ndigits
        if batch_rows is not None and hasattr(base, "batch_rows"):
            overrides["batch_rows"] = batch_rows
        if api_key is not None:
            overrides["api_key"] = api_key
        chosen.append(type(base.__name__, (base,), overrides) if overrides else base)
    return chosen


def _endpoint_rows(environment: Environment) -> list[dict[str, Any]]:
    rows = []
    for entry in sorted(environment.stats.entries.values(), key=lambda e: e.name):
        rows.append(
            {
                "name": entry.name,
                "method": entry.method,
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "rps": round(entry.total_rps, 2),
                **{col: entry.get_response_time_percentile(p) for col, p in PERCENTILES.items()},
            }
        )
    return rows


def run_load(
    host: str,
    shape: BoundedShape,
    user_classes: Sequence[type[User]],
    *,
    samplers: Sequence[Sampler] = (),
    cooldown: float = 0.0,
    tags: Sequence[str] | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> LoadRun:
    """Run `shape` against `host`, then record `cooldown` more seconds with no load (to watch scale-down)."""
    environment = Environment(user_classes=list(user_classes), shape_class=shape, host=host, tags=tags)
    runner = environment.create_local_runner()
    recorder = Recorder(environment, samplers=samplers, progress=progress)
    # Ctrl-C ends the load (or the cooldown) and the run so far is still reported. Handled by a gevent
    # signal watcher, not KeyboardInterrupt, which would land in whichever greenlet runs (the recorder's).
    interrupt = gevent.event.Event()

    def on_ctrl_c() -> None:
        if interrupt.is_set():  # a second Ctrl-C: Python's own handler again, and it raises at once
            on_sigint.cancel()
            os.kill(os.getpid(), signal.SIGINT)
        interrupt.set()

    on_sigint = gevent.signal_handler(signal.SIGINT, on_ctrl_c)
    try:
        recorder.start()
        runner.start_shape()
        if runner.shape_greenlet is not None:  # ends when the shape's tick() gives None (users stopped)
            gevent.wait([runner.shape_greenlet, interrupt], count=1)
        runner.stop()
        interrupt.wait(cooldown)
        if interrupt.is_set():
            print("interrupted: stopping the load and writing the report of the run so far", file=sys.stderr)
        # One more sample after the users stopped, so the timeline ends with the load's true totals.
        gevent.sleep(recorder.interval)
    finally:
        on_sigint.cancel()
        recorder.stop()
        runner.quit()
    return LoadRun(
        timeline=recorder.rows,
        endpoints=_endpoint_rows(environment),
        errors=[
            {"name": e.name, "method": e.method, "error": e.error, "occurrences": e.occurrences}
            for e in environment.stats.errors.values()
        ],
        user_classes=[cls.__name__ for cls in user_classes],
        shape={"shape": type(shape).__name__, **shape.describe()},
        sampler_errors=recorder.sampler_errors,
        interrupted=interrupt.is_set(),
    )


def console_progress(every: int = PROGRESS_EVERY_S) -> Callable[[dict[str, Any]], None]:
    """A progress line every `every` samples, and a loud warning whenever locust's own CPU passes 90 %."""
    count = 0

    def show(row: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        cpu = row.get("locust_cpu_percent") or 0.0
        if cpu > report.LOCUST_CPU_WARNING_PERCENT:
            print(
                f"WARNING t={row['t']:.0f}s: locust uses {cpu:.0f}% CPU — the load generator is the "
                "bottleneck; use fewer users or a lower --user-rps",
                file=sys.stderr,
            )
        if count % every == 0:
            p95 = row.get("p95_ms")
            print(
                f"  t={row['t']:5.0f}s users={row['users']:3d} rps={row['rps']:7.1f} "
                f"fail/s={row['failures_per_s']:5.1f} p95={'-' if p95 is None else p95}ms "
                f"locust_cpu={cpu:.0f}%",
                flush=True,
            )

    return show


def report_dir(out: Path) -> Path:
    """reports/<UTC timestamp>/ (new each run)."""
    return out / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def shape_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> BoundedShape:
    """The chosen shape with LOADTEST_* variables, then the command line's shape options, applied."""
    shape_class = SHAPES[args.shape]
    given = {
        name: getattr(args, name) for name in _all_shape_parameters() if getattr(args, name, None) is not None
    }
    foreign = sorted(set(given) - set(shape_class.parameters))
    if foreign:
        options = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise ShapeParameterError(
            f"the {args.shape} shape has no parameter {options}; it takes {sorted(shape_class.parameters)}"
        )
    return shape_class.from_env(environ, **given)


def _all_shape_parameters() -> dict[str, type]:
    return {name: kind for shape in SHAPES.values() for name, (kind, _) in shape.parameters.items()}


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `demo`: shape, its parameters, users and their request cost."""
    parser.add_argument("--shape", choices=sorted(SHAPES), default="step", help="load shape (default: step)")
    for name, kind in _all_shape_parameters().items():
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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a load shape against a URL and write a report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    parser.add_argument("--service-pid", type=int, default=None, help="record this local process's CPU")
    parser.add_argument("--watch-hpa", action="store_true", help="record the release's HPA once a second")
    parser.add_argument("--namespace", default=None, help="the release's namespace (default: the context's)")
    parser.add_argument("--release", default="model-api", help="release name (default: model-api)")
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
        return 2
    if not (math.isfinite(args.cooldown) and args.cooldown >= 0):
        print(f"error: --cooldown {args.cooldown} must be a finite number of seconds >= 0", file=sys.stderr)
        return 2
    samplers: list[Sampler] = []
    if args.service_pid is not None:
        samplers.append(ProcessCpuSampler(args.service_pid))
    watcher = None
    if args.watch_hpa:
        from loadtest.cluster import helm as cluster  # the kubernetes client only when a cluster is watched

        try:
            watcher = cluster.connect_watcher(args.namespace, args.release, args.context)
            cluster.wait_for_metrics(watcher)
        except cluster.ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
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
        scaling = cluster.live_scaling(run.timeline, f"live HPA {watcher.namespace}/{watcher.hpa_name}")
        notes = cluster.problems_seen(run.timeline)
    if run.interrupted:
        notes = [*notes, "interrupted (Ctrl-C) before the shape's end: the timeline is the run up to then"]
    files, verdicts = write_run_report(
        report_dir(args.out), run, host=args.host, scaling=scaling, notes=notes
    )
    print_summary(verdicts, scaling, files)
    if run.interrupted:
        return INTERRUPTED
    if run.requests == 0:  # e.g. a server that accepts connections and never answers
        print(f"error: no request to {args.host} completed during the run", file=sys.stderr)
        return 1
    return 1 if run.failures else 0


def run_facts(run: LoadRun, host: str) -> dict[str, Any]:
    duration = run.timeline[-1]["t"] if run.timeline else 0
    return {
        "target": host,
        "shape": ", ".join(f"{k}={v}" for k, v in run.shape.items()),
        "users": ", ".join(run.user_classes),
        "duration": f"{duration:.0f} s",
        "requests": run.requests,
        "failures": run.failures,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }


def write_run_report(
    out_dir: Path,
    run: LoadRun,
    *,
    host: str,
    scaling: report.Scaling | None = None,
    text: report.FigureText | None = None,
    extra_facts: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    timeline: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[report.ReportFiles, report.Verdicts]:
    """The report of `run`; `timeline` replaces the run's own (e.g. on a stretched clock)."""
    return report.write_report(
        out_dir,
        run.timeline if timeline is None else timeline,
        text=text or report.FigureText(f"Load test: {run.shape['shape']} against {host}"),
        scaling=scaling,
        facts={**run_facts(run, host), **(extra_facts or {})},
        endpoints=run.endpoints,
        errors=run.errors,
        notes=[*notes, *(f"sampler error: {e}" for e in run.sampler_errors)],
    )


def print_summary(
    verdicts: report.Verdicts, scaling: report.Scaling | None, files: report.ReportFiles
) -> None:
    for question, answer in report.verdict_lines(verdicts, scaling):
        print(f"  {question}: {answer}")
    for warning in verdicts.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    print(f"report: {files.markdown}")
