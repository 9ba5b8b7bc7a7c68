"""`python -m loadtest demo` (`make demo`): the project's main job on one machine, no cluster needed.

1. Render the chart with values-dev.yaml; validate each object (strict schema, the chart's kubeVersion floor).
2. Start the service as the rendered pod would (rendered command, env and port); wait on its readiness probe.
3. Step-load it for about a minute with locust (pi requests, so CPU matters, plus classify).
4. Measure the service process's CPU per request.
5. Predict how the values-prod.yaml HPA answers the same load shape at production traffic; compare the
   autoscaling strategies (CPU, requests/s, in flight, KEDA to zero) on the same measured costs; write the
   report (its "Autoscaling strategies" section: the table and strategies.png).

With `--cluster` the release is installed on the current kube context instead and the real HPA is watched
(loadtest/cluster/). This module keeps only the orchestration: the arithmetic that scales the measured load
to production lives in loadtest/autoscaling/production.py.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import gevent
import helm_python
import locust  # noqa: F401  # first of ours: locust's gevent patching must precede any ssl import
import psutil

from loadtest.autoscaling import compare, production
from loadtest.autoscaling.pipeline import DEFAULT_PIPELINE, ServiceCosts
from loadtest.autoscaling.production import ProductionForecast
from loadtest.autoscaling.simulation import SyncRow, write_syncs_csv
from loadtest.autoscaling.spec import HpaSpec, HpaSpecError
from loadtest.autoscaling.watcher import HpaWatcher
from loadtest.chart import kube_schema, release
from loadtest.chart.localpod import LocalPod, LocalPodError, free_port
from loadtest.cluster import helm, proxy, watch
from loadtest.cluster.context import ClusterError, check_reachable
from loadtest.load import runner
from loadtest.load.samplers import ProcessCpuSampler
from loadtest.load.shapes import StepShape
from loadtest.load.target import TargetUnavailable, check_target
from loadtest.report.figures import FigureText, plot_strategy_replicas
from loadtest.report.files import ReportFiles, append_section
from loadtest.report.load_run import LoadRun, print_summary, report_dir, write_run_report
from loadtest.report.verdicts import Scaling, ScalingPoint

DEV_VALUES = "values-dev.yaml"
PROD_VALUES = "values-prod.yaml"
# About a minute: four 15 s steps of 2 users each; each user sends 2 requests/s, half of the users ask for
# 20 000 digits of pi (~25 ms of CPU each), so the service's CPU rises with every step.
DEMO_SHAPE = {"step_users": 2, "step_seconds": 15.0, "steps": 4, "duration": 60.0}
DEMO_USERS = ("pi", "classify")
DEMO_USER_RPS = 2.0
DEMO_PI_NDIGITS = 20_000
IDLE_SECONDS = 3.0  # the service's CPU use with no requests, measured before the load
# Production time per measured second: a 15 s local step becomes 60 s, i.e. 4 HPA syncs per level.
DEFAULT_TIME_SCALE = 4.0
READY_TIMEOUT_S = 60.0
# The strategies' p95 goal unless --p95-goal-ms: this many times the p95 measured at the lowest step.
GOAL_OVER_LOW_LOAD_P95 = 3.0


class DemoError(RuntimeError):
    """The demo cannot continue; the message says which step failed and why."""


def render_validated(values_file: str) -> tuple[list[release.Manifest], str]:
    """The release rendered with `values_file`, every object checked against the chart's oldest Kubernetes."""
    objects = release.render(release.load_values([values_file]))
    floor = kube_schema.kube_version_floor(release.CHART_DIR)
    try:
        kube_schema.validate(objects, [floor])
    except kube_schema.SchemaViolation as exc:
        raise DemoError(f"{values_file}: {exc}") from None
    return objects, floor


def port_or_free(port: int) -> int:
    """`port` when nothing listens on it on loopback, else a free one (other services share this machine)."""
    with contextlib.closing(socket.socket()) as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return port
        except OSError:
            pass
    return free_port()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (make killed, CI timeout) unwinds like Ctrl-C, so the service process is always stopped."""
    main = gevent.getcurrent()
    handler = gevent.signal_handler(signal.SIGTERM, lambda: gevent.kill(main, KeyboardInterrupt))
    try:
        yield
    finally:
        handler.cancel()


@dataclass(frozen=True)
class Measured:
    """What the local run says about the service's CPU cost."""

    cpu_ms_per_request: float
    idle_millicores: float
    requests: int
    ready_seconds: float


def measure_local(pod: LocalPod, args: argparse.Namespace) -> tuple[LoadRun, Measured]:
    """Start `pod`, wait for readiness, measure idle CPU, run the step load; stop the pod whatever happens."""
    with pod:
        ready_seconds = pod.wait_ready(timeout=READY_TIMEOUT_S)
        print(
            f"   ready after {ready_seconds:.1f} s "
            f"(rendered readiness probe {pod.probe_urls().get('readiness')})"
        )
        if pod.pid is None:
            raise DemoError("the service process did not start")
        cpu = ProcessCpuSampler(pod.pid)
        idle_start = cpu.cpu_seconds()
        gevent.sleep(IDLE_SECONDS)
        idle_millicores = 1000.0 * (cpu.cpu_seconds() - idle_start) / IDLE_SECONDS
        shape = demo_shape(args)
        users = runner.configured_users(
            DEMO_USERS,
            user_rps=DEMO_USER_RPS,
            pi_ndigits=DEMO_PI_NDIGITS,
            api_key=pod.env.get("MODEL_API_API_KEY") or None,
        )
        print(f"3/5 step load for {shape.duration:.0f} s: {shape.describe()}, users {list(DEMO_USERS)}")
        load_start = cpu.cpu_seconds()
        started = time.monotonic()
        run = runner.run_load(pod.url(""), shape, users, samplers=[cpu], progress=runner.console_progress())
        try:
            used = cpu.cpu_seconds() - load_start
        except psutil.NoSuchProcess:
            raise DemoError(f"the service process exited during the load:\n{pod.output()[-3000:]}") from None
        busy_seconds = used - idle_millicores / 1000.0 * (time.monotonic() - started)
    if run.requests == 0:
        raise DemoError("the load test made no request: see the errors above")
    return run, Measured(
        cpu_ms_per_request=1000.0 * max(busy_seconds, 0.0) / run.requests,
        idle_millicores=idle_millicores,
        requests=run.requests,
        ready_seconds=ready_seconds,
    )


def predicted_scaling(rows: Sequence[SyncRow], spec: HpaSpec, description: str) -> Scaling:
    """The predicted syncs as the report's replica series."""
    return Scaling(
        source="predicted",
        points=[
            ScalingPoint(
                t=r.t, desired=r.desired, ready=r.ready_replicas, utilization=r.utilization, target=r.target
            )
            for r in rows
        ],
        description=description,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
    )


def readiness_period(objects: Sequence[release.Manifest]) -> float:
    return float((release.main_container(objects).get("readinessProbe") or {}).get("periodSeconds", 10))


def demo_shape(args: argparse.Namespace) -> StepShape:
    """The demo's step load, `--duration` long; DemoError for an option out of range, before anything runs."""
    for option, value in (("--time-scale", args.time_scale), ("--ready-delay", args.ready_delay)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise DemoError(f"{option} {value} must be a finite number > 0")
    if not (math.isfinite(args.cooldown) and args.cooldown >= 0):
        raise DemoError(f"--cooldown {args.cooldown} must be a finite number of seconds >= 0")
    try:
        return StepShape(**{**DEMO_SHAPE, "duration": args.duration})
    except ValueError as exc:
        raise DemoError(f"--duration: {exc}") from None


def forecast_production(
    run: LoadRun, measured: Measured, prod: Sequence[release.Manifest], args: argparse.Namespace
) -> ProductionForecast:
    """The prod HPA's predicted answer to the measured load (loadtest/autoscaling/production.py)."""
    ready_delay = args.ready_delay
    if ready_delay is None:
        ready_delay = production.ready_delay_for(measured.ready_seconds, readiness_period(prod))
    try:
        return production.forecast(
            HpaSpec.from_release(prod),
            run.timeline,
            cpu_ms_per_request=measured.cpu_ms_per_request,
            idle_millicores=measured.idle_millicores,
            ready_delay=ready_delay,
            time_scale=args.time_scale,
            peak_pods=args.prod_peak_pods,
        )
    except production.ScaleError as exc:
        raise DemoError(f"{PROD_VALUES}: {exc}") from None


def demo_notes(measured: Measured, forecast: ProductionForecast, floor: str) -> list[str]:
    """How the numbers were obtained: what was measured, each factor and assumption, and how to change it."""
    p, step = forecast, DEMO_SHAPE["step_seconds"]
    return [
        f"Measured: {measured.cpu_ms_per_request:.2f} ms of service CPU per request (process CPU time "
        f"during the load, minus its idle use of {measured.idle_millicores:.0f} millicores, over "
        f"{measured.requests} requests). The dev pod logs at debug level, so this cost is slightly "
        "pessimistic for production.",
        f"Production traffic = {p.rps_scale:.1f} x the local requests/s, chosen so that the local peak "
        f"({p.peak_rps:.1f} requests/s) needs about {p.peak_pods} pods at the HPA target: scale = "
        f"({p.peak_pods} - 0.5) pods x {production.cpu_request_milli(p.spec)} millicores requested x "
        f"{p.spec.cpu_target}% / ({p.peak_rps:.1f} requests/s x {measured.cpu_ms_per_request:.2f} ms). "
        "Change it with --prod-peak-pods.",
        f"Production time = {p.time_scale:g} x the local run's time (each {step:.0f} s local step is held "
        f"{step * p.time_scale:.0f} s, several 15 s HPA syncs); panel (a) is plotted on this clock, "
        "`t_measured` in timeline.csv is the local time. Change it with --time-scale.",
        f"A new pod is assumed Ready {p.ready_delay:.0f} s after the HPA asks for it (local start-to-ready "
        f"{measured.ready_seconds:.1f} s + one readiness probe period + "
        f"{production.POD_START_ALLOWANCE_S:.0f} s to schedule and create the container, image already on "
        "the node). Change it with --ready-delay.",
        "The predictor reads each pod's CPU as metrics-server reports it (the average over its 15 s "
        "window before each sync), so a load step shows fully one sync after it lands, as on a cluster.",
        f"The chart was rendered with {DEV_VALUES} (run) and {PROD_VALUES} (prediction), "
        f"each object validated strictly against Kubernetes {floor}; predicted-syncs.csv has every "
        "predicted HPA sync.",
    ]


def write_strategy_comparison(
    run: LoadRun,
    measured: Measured,
    forecast: ProductionForecast,
    files: ReportFiles,
    args: argparse.Namespace,
) -> str:
    """The strategy table and the replicas-per-strategy panel, added to the report; returns the table."""
    try:
        latency_ms, p95_ms = production.low_load_latency(run.timeline)
    except production.ScaleError as exc:
        return f"strategy comparison skipped: {exc}"
    goal = args.p95_goal_ms or round(GOAL_OVER_LOW_LOAD_P95 * p95_ms)
    costs = ServiceCosts(
        measured.cpu_ms_per_request,
        latency_ms=latency_ms,
        p95_ms=p95_ms,
        idle_millicores=measured.idle_millicores,
    )
    runs = production.compare_strategies(forecast, run.timeline, costs, goal)
    text = "\n".join(
        [
            compare.describe_costs(costs, goal, DEFAULT_PIPELINE, forecast.ready_delay),
            compare.format_table([r.score for r in runs]),
        ]
    )
    figure = files.directory / "strategies.png"
    plot_strategy_replicas(
        figure,
        [(r.strategy.name, [(row.t, row.replicas) for row in r.rows]) for r in runs],
        production.production_load(run.timeline, forecast.rps_scale, forecast.time_scale),
        title=f"Replicas per autoscaling strategy: the measured load at {forecast.rps_scale:.1f}x traffic, "
        f"p95 goal {goal:g} ms",
        time_axis=f"production time since the load started (s): local time x{forecast.time_scale:g}",
    )
    for r in runs:
        write_syncs_csv(files.directory / f"strategy-{compare.slug(r.strategy.name)}.csv", r.rows)
    append_section(
        files.markdown,
        "Autoscaling strategies on the measured costs (python -m loadtest predict --compare)",
        text,
        figure=figure,
    )
    return f"\nAutoscaling strategies (report section, {figure.name}):\n{text}"


def start_local_pod(dev: Sequence[release.Manifest]) -> LocalPod:
    """The dev pod as a local process on its rendered port, or on a free one when that is taken."""
    rendered_port = LocalPod.from_release(dev).port
    port = port_or_free(rendered_port)
    pod = LocalPod.from_release(dev, port=None if port == rendered_port else port)
    moved = "" if port == rendered_port else f" (rendered port {rendered_port} is busy here)"
    print(f"2/5 start the service as the rendered pod would: {' '.join(pod.command)} on port {port}{moved}")
    return pod


def run_local_demo(args: argparse.Namespace) -> int:
    demo_shape(args)  # option errors before the service starts
    print(f"1/5 render {DEV_VALUES} and validate every object")
    dev, floor = render_validated(DEV_VALUES)
    print(f"   {len(dev)} objects valid (strict schema, Kubernetes {floor}, the chart's kubeVersion floor)")
    pod = start_local_pod(dev)
    run, measured = measure_local(pod, args)
    print(
        f"4/5 service CPU: {measured.cpu_ms_per_request:.2f} ms per request "
        f"over {measured.requests} requests (idle {measured.idle_millicores:.0f} millicores, subtracted)"
    )
    prod, _ = render_validated(PROD_VALUES)
    forecast = forecast_production(run, measured, prod, args)
    print(
        f"5/5 predict the {PROD_VALUES} HPA at {forecast.rps_scale:.1f}x traffic "
        f"(peak {forecast.peak_rps * forecast.rps_scale:.0f} requests/s)"
    )
    spec, local_end = forecast.spec, run.timeline[-1]["t"]
    scaling = predicted_scaling(
        forecast.rows, spec, f"{PROD_VALUES}, predicted at {forecast.rps_scale:.1f}x the local traffic"
    )
    files, verdicts = write_run_report(
        report_dir(args.out),
        run,
        host=pod.url(""),
        scaling=scaling,
        text=FigureText(
            title=f"make demo: {DEV_VALUES} measured locally, {PROD_VALUES} HPA predicted",
            load=f"Measured locally ({DEV_VALUES}): requests/s and p95 latency of each 1 s window",
            time_axis=f"production time since the load started (s): local time x{args.time_scale:g}",
            rps_legend=f"requests/s (local; production = x{forecast.rps_scale:.1f})",
        ),
        extra_facts={
            "duration": f"{local_end:.0f} s locally, {local_end * args.time_scale:.0f} s in production",
            "CPU per request (measured)": f"{measured.cpu_ms_per_request:.2f} ms",
            "production scale": f"{forecast.rps_scale:.1f}x requests/s, {args.time_scale:g}x time",
            "HPA (prod)": f"min {spec.min_replicas}, max {spec.max_replicas}, CPU target {spec.cpu_target}%",
        },
        notes=demo_notes(measured, forecast, floor),
        timeline=production.on_production_clock(run.timeline, args.time_scale),
    )
    write_syncs_csv(files.directory / "predicted-syncs.csv", forecast.rows)
    print(write_strategy_comparison(run, measured, forecast, files, args))
    print(
        f"\nMeasured locally: {run.requests} requests, {run.failures} failures, "
        f"{measured.cpu_ms_per_request:.2f} ms CPU per request"
    )
    print_summary(verdicts, scaling, files, errors=run.errors)
    return 1 if run.failures else 0


def prepare_release(args: argparse.Namespace) -> tuple[list[release.Manifest], str, HpaWatcher]:
    """Install or upgrade the release and wait until its HPA has metrics: (objects, Helm used, watcher)."""
    version = check_reachable(args.context)
    print(f"1/4 cluster {version} reachable; install or upgrade {args.release} in namespace {args.namespace}")
    values = helm.cluster_values()
    objects = release.render(values, release=args.release, namespace=args.namespace)
    tool = helm.install_or_upgrade(
        values, release_name=args.release, namespace=args.namespace, context=args.context
    )
    print(f"   installed with {tool}")
    watcher = watch.connect_watcher(args.namespace, args.release, args.context, objects=objects)
    print("2/4 waiting for the HPA's CPU metrics (metrics-server)")
    watch.wait_for_metrics(watcher)
    return objects, tool, watcher


def run_cluster_demo(args: argparse.Namespace) -> int:
    """`make demo CLUSTER=1`: install, reach, step-load with the HPA watched, report with live replicas."""
    shape = demo_shape(args)  # option errors before the cluster is touched
    try:
        objects, tool, watcher = prepare_release(args)
        with contextlib.ExitStack() as stack:
            host = args.url or stack.enter_context(proxy.service_url(objects, args.namespace, args.context))
            check_target(host)
            users = runner.configured_users(DEMO_USERS, user_rps=DEMO_USER_RPS, pi_ndigits=DEMO_PI_NDIGITS)
            print(
                f"3/4 step load through {host}: {shape.duration:.0f} s, then {args.cooldown:.0f} s watching"
            )
            run = runner.run_load(
                host,
                shape,
                users,
                samplers=[watcher.sample],
                cooldown=args.cooldown,
                progress=runner.console_progress(),
            )
    except (ClusterError, TargetUnavailable) as exc:
        print(f"demo --cluster failed: {exc}", file=sys.stderr)
        return 1
    scaling = watch.live_scaling(run.timeline, f"live HPA {args.namespace}/{watcher.hpa_name}")
    files, verdicts = write_run_report(
        report_dir(args.out),
        run,
        host=host,
        scaling=scaling,
        text=FigureText(f"make demo CLUSTER=1: {args.namespace}/{args.release}, live HPA"),
        notes=[
            f"Release installed with {tool} from {', '.join(helm.CLUSTER_VALUES)} with autoscaling on: "
            f"{helm.CLUSTER_OVERRIDES['autoscaling']}.",
            *watch.problems_seen(run.timeline),
            f"Remove it with: helm uninstall {args.release} --namespace {args.namespace}",
        ],
    )
    print("4/4 report written")
    print_summary(verdicts, scaling, files, errors=run.errors)
    return 1 if run.failures else 0


def demo_command(args: argparse.Namespace) -> int:
    try:
        with sigterm_as_interrupt():
            if args.cluster:
                return run_cluster_demo(args)
            return run_local_demo(args)
    except KeyboardInterrupt:
        print("\ninterrupted: the service process was stopped", file=sys.stderr)
        return 130
    except (DemoError, LocalPodError, HpaSpecError, helm_python.HelmError) as exc:
        # Expected failures (bad values, a service that will not start): the message, not a traceback.
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def add_cluster_options(parser: argparse._ArgumentGroup) -> None:
    parser.add_argument("--context", default=os.environ.get("KUBE_CONTEXT"), help="kubeconfig context")
    parser.add_argument(
        "--namespace", default=helm.DEFAULT_NAMESPACE, help=f"namespace (default {helm.DEFAULT_NAMESPACE})"
    )
    parser.add_argument(
        "--release", default=release.DEFAULT_RELEASE, help=f"release name (default {release.DEFAULT_RELEASE})"
    )
    parser.add_argument(
        "--url",
        default=None,
        help="reach the service here (e.g. its Ingress) instead of through the API server's service proxy",
    )
    parser.add_argument(
        "--cooldown", type=float, default=120.0, help="seconds to keep watching after the load (scale-down)"
    )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--cluster", action="store_true", help="install on the current kube context and watch the HPA"
    )
    parser.add_argument(
        "--duration", type=float, default=DEMO_SHAPE["duration"], help="seconds of load (default 60)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("reports"), help="reports directory (default: reports/)"
    )
    parser.add_argument(
        "--prod-peak-pods", type=int, default=None, help="pods the predicted peak should need"
    )
    parser.add_argument(
        "--time-scale", type=float, default=DEFAULT_TIME_SCALE, help="production s per local s"
    )
    parser.add_argument(
        "--ready-delay", type=float, default=None, help="seconds for a new pod to become Ready"
    )
    parser.add_argument(
        "--p95-goal-ms",
        type=float,
        default=None,
        help=f"the strategies' p95 goal (default {GOAL_OVER_LOW_LOAD_P95:g} x the p95 at the lowest step)",
    )
    add_cluster_options(parser.add_argument_group("with --cluster"))
    parser.set_defaults(func=demo_command)
