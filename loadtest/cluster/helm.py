"""With a cluster: install or upgrade the release, reach its Service, watch the real HPA during a load run.

Uses the current kubeconfig context (or `--context`). Helm: the `helm` CLI when it is on PATH, else Helm's
own Go SDK through helm-python-sdk. The Service is reached through the API server's service proxy, relayed
on loopback with the kubernetes client's credentials (ServiceProxy): the API server picks a ready endpoint
per request, so new pods take their share of the load, where a port-forward would pin every connection to
one pod and hide what the HPA does. An Ingress or any other URL can be given instead (`--url`).

Nothing here imports locust: the cluster test drives the load in a subprocess (`python -m loadtest run`);
`python -m loadtest demo --cluster` (loadtest/demo.py) runs it in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

from loadtest.autoscaling.watcher import HpaWatcher, problems
from loadtest.chart import release
from loadtest.report import files as report

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


HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "content-length", "authorization"}
)  # fmt: skip


class _RelayServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The load generator drops connections when it stops its users mid-request: not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ServiceProxy:
    """A loopback HTTP server relaying each request to a Service through the API server's service proxy,
    with the kubeconfig's credentials (what `kubectl proxy` does, without needing kubectl).

    The API server picks a ready endpoint per request, so the load spreads over the pods as they scale;
    a port-forward would pin it to one pod. The service's own API key must travel as X-API-Key here:
    the Authorization header carries the cluster credentials.
    """

    def __init__(self, api_client: Any, path: str, timeout: float = 30.0) -> None:
        self.base = api_client.configuration.host.rstrip("/") + path
        self._configuration = api_client.configuration
        self._pool = api_client.rest_client.pool_manager
        self._timeout = timeout
        self._server = _RelayServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="service-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def auth_headers(self) -> dict[str, str]:
        """The kubeconfig's header credentials (bearer token, refreshed by exec plugins); certificates are
        already in the connection pool."""
        return {
            setting["key"]: setting["value"]
            for setting in self._configuration.auth_settings().values()
            if setting.get("in") == "header" and setting.get("value")
        }

    def relay(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, list, bytes]:
        """(status, headers, body) of `method path` sent on to the Service; 502 when the API server fails."""
        forwarded = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP} | self.auth_headers()
        try:
            response = self._pool.request(
                method, self.base + path, body=body, headers=forwarded, timeout=self._timeout, retries=False
            )
        except Exception as exc:  # any transport failure is the proxy's answer, not a crash of the relay
            payload = json.dumps({"error": f"service proxy: {type(exc).__name__}: {exc}"}).encode()
            return 502, [("Content-Type", "application/json")], payload
        kept = [(k, v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
        return response.status, kept, response.data

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                status, headers, payload = proxy.relay(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

            def log_message(
                self, format: str, *args: Any
            ) -> None:  # one line per request would drown the run
                pass

        return Handler


@contextlib.contextmanager
def service_url(
    objects: Sequence[release.Manifest], namespace: str, context: str | None = None
) -> Iterator[str]:
    """A loopback base URL for the release's Service, for as long as the block runs (ServiceProxy)."""
    from kubernetes import client, config

    config.load_kube_config(context=context)
    with ServiceProxy(client.ApiClient(), service_path(objects, namespace)) as url:
        yield url


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


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--context", default=os.environ.get("KUBE_CONTEXT"), help="kubeconfig context")
    parser.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help=f"namespace (default {DEFAULT_NAMESPACE})"
    )
    parser.add_argument(
        "--release", default=DEFAULT_RELEASE, help=f"release name (default {DEFAULT_RELEASE})"
    )
    parser.add_argument(
        "--url",
        default=None,
        help="reach the service here (e.g. its Ingress) instead of through the API server's service proxy",
    )
    parser.add_argument(
        "--cooldown", type=float, default=120.0, help="seconds to keep watching after the load (scale-down)"
    )
