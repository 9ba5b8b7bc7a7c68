"""With a cluster: install or upgrade the release, reach its Service, watch the real HPA during a load run.

Uses the current kubeconfig context (or `--context`). Helm: the `helm` CLI when it is on PATH, else Helm's
own Go SDK through helm-python-sdk. The Service is reached through the API server's service proxy
(`kubectl proxy`), which picks a ready endpoint per request, so new pods take their share of the load;
a port-forward pins every connection to one pod and would hide what the HPA does. An Ingress or any other
URL can be given instead (`--url`).

Nothing here imports locust: the cluster test drives the load in a subprocess (`python -m loadtest run`),
and only `run_cluster_demo` (in-process, like the offline demo) imports the runner.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from loadtest import release, report
from loadtest.hpa_watcher import HpaWatcher, problems

# The dev release with autoscaling on and a short scale-down window, so a scale-down shows within minutes.
CLUSTER_VALUES = ("values-dev.yaml",)
CLUSTER_OVERRIDES: dict[str, Any] = {
    "autoscaling": {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetCPUUtilizationPercentage": 50,
        "behavior": {
            "scaleDown": {
                "stabilizationWindowSeconds": 30,
                "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
            }
        },
    }
}
DEFAULT_RELEASE = "model-api-load"
DEFAULT_NAMESPACE = "model-api-load"
INSTALL_TIMEOUT_S = 300
METRICS_TIMEOUT_S = 180  # metrics-server needs a scrape or two after the pods start
PROXY_READY_TIMEOUT_S = 30


class ClusterError(RuntimeError):
    """The cluster path cannot continue; the message says what to fix."""


def check_reachable(context: str | None = None) -> str:
    """The API server's version; ClusterError naming the context when none answers."""
    from kubernetes import client, config

    try:
        config.load_kube_config(context=context)
        version = client.VersionApi().get_code(_request_timeout=5)
    except Exception as exc:  # any failure means "no cluster here"; the reason goes to the user verbatim
        raise ClusterError(
            f"no reachable Kubernetes cluster in kubeconfig context {context or '(current)'} "
            f"({type(exc).__name__}: {exc}). Start one (e.g. `kind create cluster`) "
            "or run `make demo` without CLUSTER=1"
        ) from None
    return str(version.git_version)


def install_or_upgrade(
    values: Mapping[str, Any], *, release_name: str, namespace: str, context: str | None = None
) -> str:
    """`helm upgrade --install` with the CLI when present, else the Helm SDK; returns which one was used."""
    helm = shutil.which("helm")
    if helm:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="model-api-values-") as values_file:
            yaml.safe_dump(dict(values), values_file)
            values_file.flush()
            command = [
                helm, "upgrade", "--install", release_name, str(release.CHART_DIR),
                "--namespace", namespace, "--create-namespace", "-f", values_file.name,
                "--wait", "--timeout", f"{INSTALL_TIMEOUT_S}s",
                *(["--kube-context", context] if context else []),
            ]  # fmt: skip
            finished = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S + 60)
        if finished.returncode != 0:
            raise ClusterError(f"helm upgrade --install {release_name} failed:\n{finished.stderr.strip()}")
        return f"helm CLI ({helm})"
    return _install_with_sdk(values, release_name=release_name, namespace=namespace, context=context)


def _install_with_sdk(
    values: Mapping[str, Any], *, release_name: str, namespace: str, context: str | None
) -> str:
    import helm_python

    config = helm_python.Config(namespace=namespace, kube_context=context)
    try:
        try:
            config.upgrade(
                str(release.CHART_DIR), release_name, dict(values), namespace=namespace, wait="watcher",
                timeout=INSTALL_TIMEOUT_S,
            )  # fmt: skip
        except helm_python.HelmNotFoundError:  # first install
            config.install(
                str(release.CHART_DIR), release_name, dict(values), namespace=namespace, wait="watcher",
                timeout=INSTALL_TIMEOUT_S, create_namespace=True,
            )  # fmt: skip
    except helm_python.HelmError as exc:
        raise ClusterError(f"Helm SDK could not install or upgrade {release_name}: {exc}") from None
    finally:
        config.close()
    return f"Helm SDK {helm_python.helm_sdk_version()} (helm-python-sdk; no helm CLI on PATH)"


def uninstall(release_name: str, namespace: str, context: str | None = None) -> None:
    """Remove the release (no error when it is already gone)."""
    helm = shutil.which("helm")
    if helm:
        command = [helm, "uninstall", release_name, "--namespace", namespace, "--ignore-not-found", "--wait"]
        finished = subprocess.run(
            [*command, *(["--kube-context", context] if context else [])],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        if finished.returncode != 0:
            raise ClusterError(f"helm uninstall {release_name} failed:\n{finished.stderr.strip()}")
        return
    import helm_python

    config = helm_python.Config(namespace=namespace, kube_context=context)
    try:
        config.uninstall(release_name, ignore_not_found=True, wait="watcher", timeout=INSTALL_TIMEOUT_S)
    except helm_python.HelmError as exc:
        raise ClusterError(f"Helm SDK could not uninstall {release_name}: {exc}") from None
    finally:
        config.close()


def service_path(objects: Sequence[release.Manifest], namespace: str) -> str:
    """The API server's proxy path to the release's Service port named http."""
    service = release.get(objects, "Service", release.workload(objects)["metadata"]["name"])
    port = next((p for p in service["spec"]["ports"] if p.get("name") == "http"), service["spec"]["ports"][0])
    name = service["metadata"]["name"]
    return f"/api/v1/namespaces/{namespace}/services/{name}:{port.get('name') or port['port']}/proxy"


@contextlib.contextmanager
def service_url(
    objects: Sequence[release.Manifest], namespace: str, context: str | None = None
) -> Iterator[str]:
    """A local base URL for the release's Service, through `kubectl proxy` for as long as the block runs."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ClusterError(
            "kubectl is not on PATH: install it (the Service is reached through `kubectl proxy`), "
            "or pass --url with the release's Ingress URL"
        )
    command = [kubectl, "proxy", "--port=0", *(["--context", context] if context else [])]
    proxy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = _proxy_port(proxy)
        yield f"http://127.0.0.1:{port}{service_path(objects, namespace)}"
    finally:
        proxy.terminate()
        try:
            proxy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.kill()
            proxy.wait()


def _proxy_port(proxy: subprocess.Popen[str]) -> int:
    """The port from kubectl proxy's first line, "Starting to serve on 127.0.0.1:PORT"."""
    assert proxy.stdout is not None
    deadline = time.monotonic() + PROXY_READY_TIMEOUT_S
    line = ""
    while time.monotonic() < deadline:
        line = proxy.stdout.readline()
        match = re.search(r"Starting to serve on [\d.]+:(\d+)", line)
        if match:
            return int(match.group(1))
        if not line and proxy.poll() is not None:
            break
    raise ClusterError(f"kubectl proxy did not start: {line.strip() or f'exit {proxy.poll()}'}")


def connect_watcher(namespace: str | None, release_name: str, context: str | None = None) -> HpaWatcher:
    try:
        return HpaWatcher.connect(namespace, release_name, context=context)
    except Exception as exc:
        raise ClusterError(f"cannot watch the HPA of {release_name}: {type(exc).__name__}: {exc}") from None


def wait_for_metrics(
    watcher: HpaWatcher, timeout: float = METRICS_TIMEOUT_S, poll: float = 5.0
) -> dict[str, Any]:
    """Sample until the HPA exists and has CPU metrics; ClusterError listing what is wrong after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        row = watcher.sample()
        found = problems(row)
        if not found:
            return row
        if not row.get("hpa_found") or time.monotonic() > deadline:
            raise ClusterError("the HPA is not ready to scale:\n  " + "\n  ".join(found))
        time.sleep(poll)


def live_scaling(timeline: Sequence[Mapping[str, Any]], description: str) -> report.Scaling | None:
    """The watcher's columns in the timeline as the report's replica series (None when it saw no HPA)."""
    points = [
        report.ScalingPoint(
            t=float(row["t"]),
            desired=int(row["hpa_desired_replicas"]),
            ready=int(row.get("workload_ready_replicas") or 0),
            utilization=row.get("hpa_cpu_utilization"),
            target=row.get("hpa_cpu_target"),
        )
        for row in timeline
        if row.get("hpa_desired_replicas") is not None
    ]
    if not points:
        return None
    last = next(row for row in reversed(timeline) if row.get("hpa_desired_replicas") is not None)
    return report.Scaling(
        source="live",
        points=points,
        description=description,
        min_replicas=last.get("hpa_min_replicas"),
        max_replicas=last.get("hpa_max_replicas"),
    )


def problems_seen(timeline: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each distinct problem the watcher's rows showed during the run, with the time it began."""
    first_seen: dict[str, float] = {}
    for row in timeline:
        if "hpa_found" in row:
            for problem in problems(row):
                first_seen.setdefault(problem, float(row["t"]))
    return [f"from t={t:.0f} s: {problem}" for problem, t in first_seen.items()]


def cluster_values() -> dict[str, Any]:
    return release.load_values(CLUSTER_VALUES, CLUSTER_OVERRIDES)


def prepare_release(args: argparse.Namespace) -> tuple[list[release.Manifest], str, HpaWatcher]:
    """Install or upgrade the release and wait until its HPA has metrics: (objects, Helm used, watcher)."""
    version = check_reachable(args.context)
    print(f"1/4 cluster {version} reachable; install or upgrade {args.release} in namespace {args.namespace}")
    values = cluster_values()
    objects = release.render(values, release=args.release, namespace=args.namespace)
    tool = install_or_upgrade(
        values, release_name=args.release, namespace=args.namespace, context=args.context
    )
    print(f"   installed with {tool}")
    watcher = connect_watcher(args.namespace, args.release, args.context)
    print("2/4 waiting for the HPA's CPU metrics (metrics-server)")
    wait_for_metrics(watcher)
    return objects, tool, watcher


def run_cluster_demo(args: argparse.Namespace) -> int:
    """`make demo CLUSTER=1`: install, reach, step-load with the HPA watched, report with live replicas."""
    from loadtest import demo, runner  # locust is imported only for an in-process run

    shape = demo.demo_shape(args)  # option errors before the cluster is touched
    users = runner.configured_users(
        demo.DEMO_USERS, user_rps=demo.DEMO_USER_RPS, pi_ndigits=demo.DEMO_PI_NDIGITS
    )
    try:
        objects, tool, watcher = prepare_release(args)
        with contextlib.ExitStack() as stack:
            host = args.url or stack.enter_context(service_url(objects, args.namespace, args.context))
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
    except ClusterError as exc:
        print(f"demo --cluster failed: {exc}", file=sys.stderr)
        return 1
    scaling = live_scaling(run.timeline, f"live HPA {args.namespace}/{args.release}")
    files, verdicts = runner.write_run_report(
        runner.report_dir(args.out),
        run,
        host=host,
        scaling=scaling,
        text=report.FigureText(f"make demo CLUSTER=1: {args.namespace}/{args.release}, live HPA"),
        notes=[
            f"Release installed with {tool} from {', '.join(CLUSTER_VALUES)} with autoscaling on: "
            f"{CLUSTER_OVERRIDES['autoscaling']}.",
            *problems_seen(run.timeline),
            f"Remove it with: helm uninstall {args.release} --namespace {args.namespace}",
        ],
    )
    print("4/4 report written")
    runner.print_summary(verdicts, scaling, files)
    return 1 if run.failures else 0


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context", default=os.environ.get("KUBE_CONTEXT"), help="kubeconfig context")
    parser.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help=f"namespace (default {DEFAULT_NAMESPACE})"
    )
    parser.add_argument(
        "--release", default=DEFAULT_RELEASE, help=f"release name (default {DEFAULT_RELEASE})"
    )
    parser.add_argument(
        "--url", default=None, help="reach the service here (e.g. its Ingress) instead of kubectl proxy"
    )
    parser.add_argument(
        "--cooldown", type=float, default=120.0, help="seconds to keep watching after the load (scale-down)"
    )
