"""`python -m loadtest demo` (`make demo`): the project's main job on one machine, no cluster needed.

1. Render the chart with values-dev.yaml; validate each object (strict schema, the chart's kubeVersion floor).
2. Start the service as the rendered pod would (rendered command, env and port); wait on its readiness probe.
3. Step-load it for about a minute with locust (pi requests, so CPU matters, plus classify).
4. Measure the service process's CPU per request.
5. Predict how the values-prod.yaml HPA answers the same load shape at production traffic; write the report.

With `--cluster` the release is installed on the current kube context instead and the real HPA is watched
(loadtest/cluster.py).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import signal
import socket
import statistics
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import helm_python
import locust  # noqa: F401  # first of ours: locust's gevent patching must precede any ssl import
import psutil

from loadtest.autoscaling.spec import HpaSpec, HpaSpecError, SyncRow, predict
from loadtest.chart import kube_schema, release
from loadtest.chart.localpod import LocalPod, LocalPodError, free_port
from loadtest.cluster import helm as cluster
from loadtest.load import runner
from loadtest.load.shapes import StepShape
from loadtest.report import files as report

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
TAIL_AFTER_BASELINE_S = 60.0  # predicted time kept on the plot once the HPA is back to minReplicas
POD_START_ALLOWANCE_S = 5.0  # scheduling and container creation, which a local process does not show


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


def measure_local(pod: LocalPod, args: argparse.Namespace) -> tuple[runner.LoadRun, Measured]:
    """Start `pod`, wait for readiness, measure idle CPU, run the step load; stop the pod whatever happens."""
    with pod:
        ready_seconds = pod.wait_ready(timeout=READY_TIMEOUT_S)
        print(
            f"   ready after {ready_seconds:.1f} s "
            f"(rendered readiness probe {pod.probe_urls().get('readiness')})"
        )
        if pod.pid is None:
            raise DemoError("the service process did not start")
        cpu = runner.ProcessCpuSampler(pod.pid)
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


def peak_rps(timeline: Sequence[Mapping[str, Any]]) -> float:
    """The median requests/s while the most users ran: the load's top step, robust to one slow second."""
    top = max(int(r["users"]) for r in timeline)
    return statistics.median(float(r["rps"]) for r in timeline if int(r["users"]) == top)


def cpu_request_milli(spec: HpaSpec) -> int:
    """The pod's CPU request as the HPA's CPU target counts it; DemoError when the HPA ignores CPU."""
    cpu_metric = next((m for m in spec.metrics if m.resource == "cpu" and m.average_utilization), None)
    if cpu_metric is None or spec.cpu_target is None:
        raise DemoError(
            f"{PROD_VALUES}: the HPA has no CPU utilization target, so CPU per request predicts nothing"
        )
    return spec.request_milli(cpu_metric)


def rps_scale_for(spec: HpaSpec, peak: float, cpu_ms_per_request: float, peak_pods: int) -> float:
    """Traffic multiplier at which the peak needs `peak_pods` pods at the HPA's CPU target.

    One request costs `cpu_ms_per_request` ms of CPU, so r requests/s use r x cpu_ms millicores; a pod at the
    target uses request x target/100 millicores. Aim half a pod below `peak_pods` so the ceiling lands on it.
    """
    if not spec.min_replicas < peak_pods <= spec.max_replicas:
        raise DemoError(
            f"--prod-peak-pods {peak_pods} must lie above minReplicas {spec.min_replicas} "
            f"and at most maxReplicas {spec.max_replicas}"
        )
    if peak <= 0 or cpu_ms_per_request <= 0:
        raise DemoError(
            f"nothing to scale: peak {peak} requests/s at {cpu_ms_per_request} ms of CPU per request"
        )
    per_pod_millicores = cpu_request_milli(spec) * spec.cpu_target / 100.0
    return (peak_pods - 0.5) * per_pod_millicores / (peak * cpu_ms_per_request)


def production_load(
    timeline: Sequence[Mapping[str, Any]], rps_scale: float, time_scale: float
) -> list[tuple[float, float]]:
    """The measured per-second load as (t, rps) steps on the production clock, then nothing."""
    load = [(round((float(r["t"]) - 1.0) * time_scale, 3), float(r["rps"]) * rps_scale) for r in timeline]
    load = [(max(t, 0.0), rps) for t, rps in load]
    load = [row for i, row in enumerate(load) if i == 0 or row[0] > load[i - 1][0]]
    return [*load, (round(float(timeline[-1]["t"]) * time_scale, 3), 0.0)]


def trimmed(rows: Sequence[SyncRow], load_end: float, min_replicas: int) -> list[SyncRow]:
    """Predicted syncs up to a minute after the HPA is back at minReplicas once the load has ended."""
    back = next((r.t for r in rows if r.t > load_end and r.desired == r.ready_replicas == min_replicas), None)
    return list(rows) if back is None else [r for r in rows if r.t <= back + TAIL_AFTER_BASELINE_S]


def predicted_scaling(rows: Sequence[SyncRow], spec: HpaSpec, description: str) -> report.Scaling:
    return report.Scaling(
        source="predicted",
        points=[
            report.ScalingPoint(
                t=r.t, desired=r.desired, ready=r.ready_replicas, utilization=r.utilization, target=r.target
            )
            for r in rows
        ],
        description=description,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
    )


def on_production_clock(timeline: Sequence[Mapping[str, Any]], time_scale: float) -> list[dict[str, Any]]:
    return [{**row, "t": round(float(row["t"]) * time_scale, 2), "t_measured": row["t"]} for row in timeline]


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


@dataclass(frozen=True)
class Prediction:
    """The values-prod.yaml HPA's predicted answer to the measured load, and how the load was scaled."""

    spec: HpaSpec
    peak_rps: float
    peak_pods: int
    rps_scale: float
    time_scale: float
    ready_delay: float
    rows: list[SyncRow]

    @property
    def scaling(self) -> report.Scaling:
        return predicted_scaling(
            self.rows, self.spec, f"{PROD_VALUES}, predicted at {self.rps_scale:.1f}x the local traffic"
        )


def predict_production(
    run: runner.LoadRun, measured: Measured, prod: Sequence[release.Manifest], args: argparse.Namespace
) -> Prediction:
    spec = HpaSpec.from_release(prod)
    peak_pods = args.prod_peak_pods or max(spec.min_replicas + 2, round(0.8 * spec.max_replicas))
    peak = peak_rps(run.timeline)
    rps_scale = rps_scale_for(spec, peak, measured.cpu_ms_per_request, peak_pods)
    ready_delay = args.ready_delay
    if ready_delay is None:  # local start-to-ready, one readiness period (the kubelet probes periodically)
        ready_delay = math.ceil(measured.ready_seconds) + readiness_period(prod) + POD_START_ALLOWANCE_S
    load = production_load(run.timeline, rps_scale, args.time_scale)
    rows = predict(
        spec,
        load,
        measured.cpu_ms_per_request,
        ready_delay=ready_delay,
        idle_millicores=measured.idle_millicores,
    )
    return Prediction(
        spec=spec,
        peak_rps=peak,
        peak_pods=peak_pods,
        rps_scale=rps_scale,
        time_scale=args.time_scale,
        ready_delay=ready_delay,
        rows=trimmed(rows, load[-1][0], spec.min_replicas),
    )


def demo_notes(measured: Measured, prediction: Prediction, floor: str) -> list[str]:
    """How the numbers were obtained: what was measured, each factor and assumption, and how to change it."""
    p, step = prediction, DEMO_SHAPE["step_seconds"]
    return [
        f"Measured: {measured.cpu_ms_per_request:.2f} ms of service CPU per request (process CPU time "
        f"during the load, minus its idle use of {measured.idle_millicores:.0f} millicores, over "
        f"{measured.requests} requests). The dev pod logs at debug level, so this cost is slightly "
        "pessimistic for production.",
        f"Production traffic = {p.rps_scale:.1f} x the local requests/s, chosen so that the local peak "
        f"({p.peak_rps:.1f} requests/s) needs about {p.peak_pods} pods at the HPA target: scale = "
        f"({p.peak_pods} - 0.5) pods x {cpu_request_milli(p.spec)} millicores requested x "
        f"{p.spec.cpu_target}% / ({p.peak_rps:.1f} requests/s x {measured.cpu_ms_per_request:.2f} ms). "
        "Change it with --prod-peak-pods.",
        f"Production time = {p.time_scale:g} x the local run's time (each {step:.0f} s local step is held "
        f"{step * p.time_scale:.0f} s, several 15 s HPA syncs); panel (a) is plotted on this clock, "
        "`t_measured` in timeline.csv is the local time. Change it with --time-scale.",
        f"A new pod is assumed Ready {p.ready_delay:.0f} s after the HPA asks for it (local start-to-ready "
        f"{measured.ready_seconds:.1f} s + one readiness probe period + {POD_START_ALLOWANCE_S:.0f} s "
        "to schedule and create the container, image already on the node). Change it with --ready-delay.",
        "The predictor reads each pod's CPU as metrics-server reports it (the average over its 15 s "
        "window before each sync), so a load step shows fully one sync after it lands, as on a cluster.",
        f"The chart was rendered with {DEV_VALUES} (run) and {PROD_VALUES} (prediction), "
        f"each object validated strictly against Kubernetes {floor}; predicted-syncs.csv has every "
        "predicted HPA sync.",
    ]


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
    prediction = predict_production(run, measured, prod, args)
    print(
        f"5/5 predict the {PROD_VALUES} HPA at {prediction.rps_scale:.1f}x traffic "
        f"(peak {prediction.peak_rps * prediction.rps_scale:.0f} requests/s)"
    )
    scaling, spec, local_end = prediction.scaling, prediction.spec, run.timeline[-1]["t"]
    files, verdicts = runner.write_run_report(
        runner.report_dir(args.out),
        run,
        host=pod.url(""),
        scaling=scaling,
        text=report.FigureText(
            title=f"make demo: {DEV_VALUES} measured locally, {PROD_VALUES} HPA predicted",
            load=f"Measured locally ({DEV_VALUES}): requests/s and p95 latency of each 1 s window",
            time_axis=f"production time since the load started (s): local time x{args.time_scale:g}",
            rps_legend=f"requests/s (local; production = x{prediction.rps_scale:.1f})",
        ),
        extra_facts={
            "duration": f"{local_end:.0f} s locally, {local_end * args.time_scale:.0f} s in production",
            "CPU per request (measured)": f"{measured.cpu_ms_per_request:.2f} ms",
            "production scale": f"{prediction.rps_scale:.1f}x requests/s, {args.time_scale:g}x time",
            "HPA (prod)": f"min {spec.min_replicas}, max {spec.max_replicas}, CPU target {spec.cpu_target}%",
        },
        notes=demo_notes(measured, prediction, floor),
        timeline=on_production_clock(run.timeline, args.time_scale),
    )
    _write_predicted_csv(files.directory / "predicted-syncs.csv", prediction.rows)
    print(
        f"\nMeasured locally: {run.requests} requests, {run.failures} failures, "
        f"{measured.cpu_ms_per_request:.2f} ms CPU per request"
    )
    runner.print_summary(verdicts, scaling, files)
    return 1 if run.failures else 0


def run_cluster_demo(args: argparse.Namespace) -> int:
    """`make demo CLUSTER=1`: install, reach, step-load with the HPA watched, report with live replicas."""
    shape = demo_shape(args)  # option errors before the cluster is touched
    users = runner.configured_users(DEMO_USERS, user_rps=DEMO_USER_RPS, pi_ndigits=DEMO_PI_NDIGITS)
    try:
        objects, tool, watcher = cluster.prepare_release(args)
        with contextlib.ExitStack() as stack:
            host = args.url or stack.enter_context(cluster.service_url(objects, args.namespace, args.context))
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
    except cluster.ClusterError as exc:
        print(f"demo --cluster failed: {exc}", file=sys.stderr)
        return 1
    scaling = cluster.live_scaling(run.timeline, f"live HPA {args.namespace}/{args.release}")
    files, verdicts = runner.write_run_report(
        runner.report_dir(args.out),
        run,
        host=host,
        scaling=scaling,
        text=report.FigureText(f"make demo CLUSTER=1: {args.namespace}/{args.release}, live HPA"),
        notes=[
            f"Release installed with {tool} from {', '.join(cluster.CLUSTER_VALUES)} with autoscaling on: "
            f"{cluster.CLUSTER_OVERRIDES['autoscaling']}.",
            *cluster.problems_seen(run.timeline),
            f"Remove it with: helm uninstall {args.release} --namespace {args.namespace}",
        ],
    )
    print("4/4 report written")
    runner.print_summary(verdicts, scaling, files)
    return 1 if run.failures else 0


def _write_predicted_csv(path: Path, rows: Sequence[SyncRow]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(SyncRow.CSV_COLUMNS))
        writer.writeheader()
        writer.writerows(r.as_csv_row() for r in rows)


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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="render, start, load, measure, predict the prod HPA, write a report (make demo)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    cluster.add_cluster_options(parser.add_argument_group("with --cluster"))
    parser.set_defaults(func=demo_command)
