"""A real Prometheus scraping the local slots as the rendered ServiceMonitor would have the Prometheus
Operator scrape them in a cluster.

The Operator turns a ServiceMonitor into a scrape job over Kubernetes endpoints: each target carries the
`__meta_kubernetes_*` labels of its Service and pod, and the generated relabelling keeps namespace, service,
pod, container, job (or `jobLabel`), endpoint, the `targetLabels` (from the Service) and `podTargetLabels`
(from the pod), then applies the ServiceMonitor's own `relabelings` and `metricRelabelings`. Here each local
slot is a static target carrying the same meta labels, and Prometheus itself runs that same relabelling —
so the series the AnalysisTemplate queries carry exactly the labels they would in the cluster.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from loadtest import probe
from loadtest.canary.server import BackgroundServer
from loadtest.canary.topology import Slot, Topology
from loadtest.chart import release

PROMETHEUS = "/usr/bin/prometheus"
LOOPBACK = "127.0.0.1"
META = "__meta_kubernetes_"
# ServiceMonitor relabeling fields (camelCase) → Prometheus relabel_config keys.
RELABEL_KEYS = {
    "sourceLabels": "source_labels",
    "separator": "separator",
    "targetLabel": "target_label",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}


class PrometheusError(RuntimeError):
    """Prometheus did not start or a query failed; the message says which."""


def sanitize(label: str) -> str:
    """Prometheus' label-name form of a Kubernetes label key (app.kubernetes.io/name →
    app_kubernetes_io_name)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


def _relabel(entry: Mapping[str, Any]) -> dict[str, Any]:
    converted = {RELABEL_KEYS[k]: v for k, v in entry.items() if k in RELABEL_KEYS}
    if "action" in converted:
        converted["action"] = str(converted["action"]).lower()
    return converted


def _copy(source: str, target: str) -> dict[str, Any]:
    return {"source_labels": [source], "target_label": target, "regex": "(.+)", "replacement": "$1"}


def _target_port(service: Mapping[str, Any], endpoint: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Service port a ServiceMonitor endpoint names (by `port` name, or `targetPort`)."""
    for port in service["spec"].get("ports") or []:
        if "port" in endpoint and port.get("name") == endpoint["port"]:
            return port
        if "targetPort" in endpoint and str(port.get("targetPort", port["port"])) == str(
            endpoint["targetPort"]
        ):
            return port
    return None


def _meta_labels(service: Mapping[str, Any], slot: Slot, namespace: str, port_name: str) -> dict[str, str]:
    labels = {
        f"{META}namespace": namespace,
        f"{META}service_name": service["metadata"]["name"],
        f"{META}pod_name": f"{slot.workload_name}-local",
        f"{META}pod_container_name": "model-api",
        f"{META}endpoint_port_name": port_name,
        f"{META}endpoint_address_target_kind": "Pod",
        f"{META}endpoint_address_target_name": f"{slot.workload_name}-local",
        f"{META}endpoint_ready": "true",
        f"{META}pod_ready": "true",
        f"{META}pod_ip": LOOPBACK,
    }
    for key, value in (service["metadata"].get("labels") or {}).items():
        labels[f"{META}service_label_{sanitize(key)}"] = str(value)
        labels[f"{META}service_labelpresent_{sanitize(key)}"] = "true"
    for key, value in slot.pod_labels.items():
        labels[f"{META}pod_label_{sanitize(key)}"] = str(value)
        labels[f"{META}pod_labelpresent_{sanitize(key)}"] = "true"
    return labels


def _selected(service: Mapping[str, Any], monitor: Mapping[str, Any], namespace: str) -> bool:
    spec = monitor["spec"]
    names = (spec.get("namespaceSelector") or {}).get("matchNames") or [
        monitor["metadata"].get("namespace", namespace)
    ]
    if namespace not in names and not (spec.get("namespaceSelector") or {}).get("any"):
        return False
    labels = service["metadata"].get("labels") or {}
    selector = spec.get("selector") or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and labels.get(key) in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def scrape_configs(
    objects: Sequence[Mapping[str, Any]],
    topology: Topology,
    ports: Mapping[str, int],
    *,
    interval: str = "1s",
    namespace: str = release.DEFAULT_NAMESPACE,
) -> list[dict[str, Any]]:
    """One scrape job per ServiceMonitor endpoint, as the Operator would generate it; `ports` maps each slot
    name to the local port of its process. The scrape interval is the rehearsal's (seconds, not minutes)."""
    jobs = []
    for monitor in release.find(objects, "ServiceMonitor"):
        spec = monitor["spec"]
        for index, endpoint in enumerate(spec.get("endpoints") or []):
            targets = []
            for service in release.find(objects, "Service"):
                if not _selected(service, monitor, namespace):
                    continue
                port = _target_port(service, endpoint)
                if port is None:
                    continue
                for slot in topology.services.get(service["metadata"]["name"], ()):
                    labels = _meta_labels(service, slot, namespace, port.get("name", ""))
                    targets.append({"targets": [f"{LOOPBACK}:{ports[slot.name]}"], "labels": labels})
            relabel = [
                _copy(f"{META}namespace", "namespace"),
                _copy(f"{META}service_name", "service"),
                _copy(f"{META}pod_name", "pod"),
                _copy(f"{META}pod_container_name", "container"),
                *(
                    _copy(f"{META}service_label_{sanitize(k)}", sanitize(k))
                    for k in spec.get("targetLabels") or []
                ),
                *(
                    _copy(f"{META}pod_label_{sanitize(k)}", sanitize(k))
                    for k in spec.get("podTargetLabels") or []
                ),
                _copy(f"{META}service_name", "job"),
            ]
            if spec.get("jobLabel"):
                relabel.append(_copy(f"{META}service_label_{sanitize(spec['jobLabel'])}", "job"))
            relabel.append({"target_label": "endpoint", "replacement": str(endpoint.get("port", index))})
            relabel += [_relabel(r) for r in endpoint.get("relabelings") or []]
            job = {
                "job_name": f"serviceMonitor/{namespace}/{monitor['metadata']['name']}/{index}",
                "honor_labels": bool(endpoint.get("honorLabels", False)),
                "metrics_path": endpoint.get("path", "/metrics"),
                "scheme": endpoint.get("scheme", "http"),
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": targets,
                "relabel_configs": relabel,
            }
            if endpoint.get("metricRelabelings"):
                job["metric_relabel_configs"] = [_relabel(r) for r in endpoint["metricRelabelings"]]
            jobs.append(job)
    return jobs


def config_text(jobs: Sequence[Mapping[str, Any]], interval: str = "1s") -> str:
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": jobs,
    }
    return "# Generated by the canary rehearsal from the rendered ServiceMonitor.\n" + yaml.safe_dump(
        config, sort_keys=False
    )


class PrometheusProcess(BackgroundServer):
    """Prometheus with its own config, TSDB directory and loopback port."""

    def __init__(self, config: str, port: int, workdir: Path, binary: str = PROMETHEUS) -> None:
        super().__init__(workdir / "prometheus.log")
        self.port = port
        self.workdir = workdir
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(config)
        self.binary = binary

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        command = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        self.spawn(command, cwd=self.workdir)
        try:
            self.wait_ready(f"{self.url}/-/ready", timeout)
        except RuntimeError as error:
            raise PrometheusError(f"prometheus: {error}") from None

    def get(self, path: str, params: Mapping[str, Any]) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10.0) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.loads(error.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {dict(params)}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str, at: float) -> dict[str, Any]:
        """An instant query at unix time `at`: {"resultType": ..., "result": ...}."""
        return self.get("/api/v1/query", {"query": promql, "time": f"{at:.3f}"})

    def targets(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/targets", {"state": "active"})["activeTargets"]

    def wait_scraped(self, expected: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until `expected` targets have been scraped successfully once; the targets."""
        last: list[list[dict[str, Any]]] = [[]]

        def all_up() -> bool:
            last[0] = self.targets()
            return len([t for t in last[0] if t.get("health") == "up"]) >= expected

        try:
            probe.wait_until(all_up, timeout=timeout, what=f"{expected} scrape targets up", interval=0.2)
        except probe.WaitTimeout:
            states = [(t.get("scrapeUrl"), t.get("health"), t.get("lastError")) for t in last[0]]
            raise PrometheusError(f"{expected} targets not up within {timeout} s: {states}") from None
        return last[0]
