"""Live HPA watcher: one flat row a second about the release's HorizontalPodAutoscaler, workload and pods.

`HpaWatcher.connect(namespace, release)` uses the current kubeconfig context; `sample()` reads the HPA,
its events, the workload, the pods and metrics.k8s.io and returns the row below. Parsing is done by the
pure functions of this module over API objects as dicts (what `ApiClient.sanitize_for_serialization`
and the custom-objects API return), so it is tested against recorded objects without a cluster.
`problems(row)` turns a row into clear messages (metrics-server missing, unknown metrics, no HPA).

Row columns (None when unknown):
    hpa_found                   bool: the HPA exists
    hpa_current_replicas        int: status.currentReplicas
    hpa_desired_replicas        int: status.desiredReplicas
    hpa_min_replicas            int
    hpa_max_replicas            int
    hpa_cpu_utilization         int: current CPU utilization, % of request (None while `<unknown>`)
    hpa_cpu_target              int: CPU target utilization, %
    hpa_cpu_average_millicores  int: current average CPU per pod, millicores
    hpa_metrics                 str: each metric as kubectl shows it: "cpu: 45%/70%; memory: <unknown>/80%"
    hpa_unknown_metrics         int: metrics without a current value
    hpa_able_to_scale           str: condition status "True" | "False" | "Unknown"
    hpa_able_to_scale_reason    str: e.g. ReadyForNewScale, ScaleDownStabilized
    hpa_scaling_active          str
    hpa_scaling_active_reason   str: e.g. ValidMetricFound, FailedGetResourceMetric
    hpa_scaling_active_message  str
    hpa_scaling_limited         str
    hpa_scaling_limited_reason  str: e.g. DesiredWithinRange, TooManyReplicas, ScaleUpLimit
    hpa_events                  str: events new since the last sample, "Type Reason: message" joined by " | "
    hpa_new_events              int: how many
    workload_replicas           int: the Deployment/StatefulSet's status.replicas
    workload_ready_replicas     int: status.readyReplicas
    pods_running, pods_pending, pods_succeeded, pods_failed, pods_unknown   int: pods by phase
    pods_terminating            int: pods with a deletionTimestamp
    pods_ready                  int: pods whose Ready condition is True
    pods_cpu_millicores         float: CPU of the release's pods from metrics.k8s.io, summed
    pods_cpu_per_pod            str: "pod=12.3m;pod2=4.0m"
    pod_metrics_error           str: why metrics.k8s.io gave nothing (None when it answered)
    hpa_error                   str: why the HPA could not be read (None when it was)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from loadtest.autoscaling.quantity import milli_value, millicores
from loadtest.chart import release as chart_release

CONDITIONS = {
    "AbleToScale": "able_to_scale",
    "ScalingActive": "scaling_active",
    "ScalingLimited": "scaling_limited",
}
PHASES = ("Running", "Pending", "Succeeded", "Failed", "Unknown")
METRICS_SERVER_HINT = (
    "metrics-server is not installed or not ready: kubectl top pods fails; install it "
    "(kind: --kubelet-insecure-tls)"
)
INSTANCE_LABEL = "app.kubernetes.io/instance"  # Helm's release label, on every object the chart renders

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Watched:
    """What the watcher reads: the HPA's name and the label selector of the pods it scales."""

    hpa_name: str | None  # None: no HPA found for the release
    pod_selector: str

    @classmethod
    def from_release(cls, objects: Iterable[chart_release.Manifest]) -> Watched:
        """The names as rendered (nameOverride, fullnameOverride and all): the HPA's and the workload's
        selector, never rebuilt from the release name."""
        objects = list(objects)
        hpa = chart_release.get(objects, "HorizontalPodAutoscaler")
        workload = chart_release.workload(objects)
        return cls(hpa["metadata"]["name"], label_selector(workload["spec"]["selector"]["matchLabels"]))


def label_selector(match_labels: Mapping[str, str]) -> str:
    """A matchLabels map as the API's label_selector string."""
    return ",".join(f"{key}={value}" for key, value in sorted(match_labels.items()))


# --- pure parsing of API objects ---------------------------------------------------------------------------


def empty_row() -> dict[str, Any]:
    """Every column, unknown."""
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(hpa_found=False, hpa_new_events=0)
    return row


def parse_hpa(hpa: Obj) -> dict[str, Any]:
    """Replicas, metrics (current against target) and conditions of an autoscaling/v2 HPA."""
    spec, status = hpa.get("spec", {}), hpa.get("status", {}) or {}
    metrics = parse_metrics(hpa)
    cpu = next((m for m in metrics if m["name"] == "cpu"), None)
    row: dict[str, Any] = {
        "hpa_found": True,
        "hpa_current_replicas": status.get("currentReplicas"),
        "hpa_desired_replicas": status.get("desiredReplicas"),
        "hpa_min_replicas": spec.get("minReplicas", 1),
        "hpa_max_replicas": spec.get("maxReplicas"),
        "hpa_cpu_utilization": cpu and cpu["current_utilization"],
        "hpa_cpu_target": cpu and cpu["target_utilization"],
        "hpa_cpu_average_millicores": cpu and cpu["current_average_milli"],
        "hpa_metrics": "; ".join(f"{m['name']}: {m['shown']}" for m in metrics),
        "hpa_unknown_metrics": sum(1 for m in metrics if m["unknown"]),
    }
    row.update(parse_conditions(hpa))
    return row


def _metric_key(metric: Obj) -> tuple[str, str]:
    """(type, name) identifying a metric in spec.metrics and status.currentMetrics alike."""
    kind = metric.get("type", "")
    source = metric.get(kind[:1].lower() + kind[1:], {}) or {}
    name = source.get("name") or (source.get("metric") or {}).get("name", "")
    return kind, name


def parse_metrics(hpa: Obj) -> list[dict[str, Any]]:
    """Each spec metric with its current value from status.currentMetrics (or unknown, like kubectl)."""
    current = {_metric_key(m): m for m in (hpa.get("status", {}) or {}).get("currentMetrics") or []}
    parsed = []
    for metric in hpa.get("spec", {}).get("metrics") or []:
        kind, name = _metric_key(metric)
        source = metric.get(kind[:1].lower() + kind[1:], {})
        target = source.get("target", {})
        status = current.get((kind, name))
        value = (status or {}).get(kind[:1].lower() + kind[1:], {}).get("current", {}) if status else {}
        utilization = value.get("averageUtilization")
        average = value.get("averageValue") if value.get("averageValue") is not None else value.get("value")
        target_utilization = target.get("averageUtilization")
        unknown = utilization is None and average is None
        if target_utilization is not None:
            shown = f"{'<unknown>' if utilization is None else f'{utilization}%'}/{target_utilization}%"
        else:
            target_value = target.get("averageValue", target.get("value"))
            shown = f"{'<unknown>' if average is None else average}/{target_value}"
        parsed.append(
            {
                "name": name,
                "type": kind,
                "current_utilization": utilization,
                "target_utilization": target_utilization,
                "current_average_milli": None if average is None else milli_value(average),
                "unknown": unknown,
                "shown": shown,
            }
        )
    return parsed


def parse_conditions(hpa: Obj) -> dict[str, Any]:
    row: dict[str, Any] = {}
    by_type = {c.get("type"): c for c in (hpa.get("status", {}) or {}).get("conditions") or []}
    for kind, column in CONDITIONS.items():
        condition = by_type.get(kind, {})
        row[f"hpa_{column}"] = condition.get("status")
        row[f"hpa_{column}_reason"] = condition.get("reason")
    row["hpa_scaling_active_message"] = by_type.get("ScalingActive", {}).get("message")
    return row


def _event_key(event: Obj) -> tuple[Any, ...]:
    """One occurrence of an event: a repeated event keeps its uid and bumps its count (or series count)."""
    meta = event.get("metadata", {})
    series = event.get("series") or {}
    return (
        meta.get("uid") or meta.get("name"),
        event.get("count"),
        series.get("count"),
        event.get("lastTimestamp"),
    )


def _event_time(event: Obj) -> str:
    return (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("metadata", {}).get("creationTimestamp")
        or ""
    )


def new_events(events: Obj, seen: set[tuple[Any, ...]]) -> list[Obj]:
    """The events of an EventList not in `seen` (which is updated), oldest first."""
    fresh = [e for e in events.get("items") or [] if _event_key(e) not in seen]
    seen.update(_event_key(e) for e in fresh)
    return sorted(fresh, key=_event_time)


def events_row(events: Iterable[Obj]) -> dict[str, Any]:
    events = list(events)
    text = " | ".join(
        f"{e.get('type', '')} {e.get('reason', '')}: {e.get('message', '')}".strip() for e in events
    )
    return {"hpa_events": text or None, "hpa_new_events": len(events)}


def parse_workload(workload: Obj) -> dict[str, Any]:
    status = workload.get("status", {}) or {}
    return {
        "workload_replicas": status.get("replicas", 0),
        "workload_ready_replicas": status.get("readyReplicas", 0),
    }


def parse_pods(pods: Obj) -> dict[str, Any]:
    """Pods by phase, terminating ones and ready ones."""
    items = pods.get("items") or []
    row: dict[str, Any] = {f"pods_{phase.lower()}": 0 for phase in PHASES}
    for pod in items:
        phase = (pod.get("status", {}) or {}).get("phase", "Unknown")
        key = f"pods_{phase.lower()}"
        row[key] = row.get(key, 0) + 1
    row["pods_terminating"] = sum(1 for p in items if p.get("metadata", {}).get("deletionTimestamp"))
    row["pods_ready"] = sum(
        1
        for p in items
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status", {}) or {}).get("conditions") or []
        )
    )
    return row


def parse_pod_metrics(metrics: Obj) -> dict[str, Any]:
    """A metrics.k8s.io PodMetricsList: CPU summed over pods and listed per pod (containers summed)."""
    per_pod = {
        item.get("metadata", {}).get("name", "?"): sum(
            millicores(c.get("usage", {}).get("cpu", "0")) for c in item.get("containers") or []
        )
        for item in metrics.get("items") or []
    }
    return {
        "pods_cpu_millicores": round(sum(per_pod.values()), 1),
        "pods_cpu_per_pod": ";".join(f"{name}={cpu:.1f}m" for name, cpu in sorted(per_pod.items())) or None,
        "pod_metrics_error": None,
    }


def metrics_api_error(status: int | None, body: str | Obj | None) -> str:
    """The message for a failed metrics.k8s.io call (404: API not registered, 503: server not ready)."""
    detail = body
    if isinstance(body, str):
        try:
            detail = json.loads(body)
        except ValueError:
            detail = body
    message = detail.get("message") if isinstance(detail, Mapping) else detail
    if status in (404, 503):
        return f"{METRICS_SERVER_HINT} (metrics.k8s.io answered {status}: {message})"
    return f"metrics.k8s.io failed ({status}): {message}"


def problems(row: Mapping[str, Any]) -> list[str]:
    """What a person must fix, from one row: no HPA, metrics-server missing, unknown metrics."""
    found = []
    if not row.get("hpa_found"):
        found.append(row.get("hpa_error") or "the HPA of the release was not found")
    if row.get("pod_metrics_error"):
        found.append(row["pod_metrics_error"])
    if row.get("hpa_scaling_active") == "False":
        found.append(
            "the HPA cannot compute replicas: ScalingActive False, "
            f"reason {row.get('hpa_scaling_active_reason')}: "
            f'"{row.get("hpa_scaling_active_message")}"'
        )
    elif row.get("hpa_unknown_metrics"):
        found.append(
            f"the HPA shows unknown metrics ({row.get('hpa_metrics')}); metrics may still be arriving"
        )
    return found


COLUMNS = (
    "hpa_found", "hpa_current_replicas", "hpa_desired_replicas", "hpa_min_replicas", "hpa_max_replicas",
    "hpa_cpu_utilization", "hpa_cpu_target", "hpa_cpu_average_millicores", "hpa_metrics",
    "hpa_unknown_metrics",
    "hpa_able_to_scale", "hpa_able_to_scale_reason", "hpa_scaling_active", "hpa_scaling_active_reason",
    "hpa_scaling_active_message", "hpa_scaling_limited", "hpa_scaling_limited_reason", "hpa_events",
    "hpa_new_events", "workload_replicas", "workload_ready_replicas",
    *(f"pods_{phase.lower()}" for phase in PHASES), "pods_terminating", "pods_ready",
    "pods_cpu_millicores", "pods_cpu_per_pod", "pod_metrics_error", "hpa_error",
)  # fmt: skip


# --- the live part: API calls -------------------------------------------------------------------------------


class HpaWatcher:
    """Samples one release's HPA, workload and pods through the Kubernetes API."""

    def __init__(self, api_client: Any, namespace: str, release: str, watched: Watched) -> None:
        from kubernetes import client  # imported here so the parsers above need no client configuration

        self.namespace, self.release = namespace, release
        self.hpa_name, self.pod_selector = watched.hpa_name, watched.pod_selector
        self._client = api_client
        self._autoscaling = client.AutoscalingV2Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)
        self._seen_events: set[tuple[Any, ...]] = set()

    @classmethod
    def connect(
        cls,
        namespace: str | None = None,
        release: str = chart_release.DEFAULT_RELEASE,
        context: str | None = None,
        objects: Iterable[chart_release.Manifest] | None = None,
    ) -> HpaWatcher:
        """The current kubeconfig context (or `context`); namespace defaults to the context's, then default.
        The names come from the rendered `objects` when given, else from the installed release (its HPA
        found by Helm's instance label, the pods by the selector of the workload it scales).

        Events already present are taken as seen, so the rows report only what happens from now on.
        """
        from kubernetes import client, config

        config.load_kube_config(context=context)
        if namespace is None:
            contexts, active = config.list_kube_config_contexts()
            chosen = next((c for c in contexts if c.get("name") == context), active) if context else active
            namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
        api_client = client.ApiClient()
        watched = (
            Watched.from_release(objects) if objects is not None else discover(api_client, namespace, release)
        )
        watcher = cls(api_client, namespace, release, watched)
        watcher.prime()
        return watcher

    def prime(self) -> None:
        new_events(self._events(), self._seen_events)

    def sample(self) -> dict[str, Any]:
        row = empty_row()
        hpa = self._read_hpa(row)
        row.update(self._events_row())
        if hpa is not None:
            row.update(self._workload_row(hpa))
        row.update(
            parse_pods(
                self._sanitize(
                    self._core.list_namespaced_pod(
                        self.namespace, label_selector=self.pod_selector, _request_timeout=5
                    )
                )
            )
        )
        row.update(self._pod_metrics_row())
        return row

    def _sanitize(self, obj: Any) -> dict[str, Any]:
        return self._client.sanitize_for_serialization(obj)

    def _read_hpa(self, row: dict[str, Any]) -> Obj | None:
        from kubernetes.client.exceptions import ApiException

        if self.hpa_name is None:
            row["hpa_error"] = (
                f"no HPA labelled {INSTANCE_LABEL}={self.release} in namespace {self.namespace}: install the "
                "release with autoscaling.enabled=true (e.g. -f values-prod.yaml) "
                "or check --namespace/--release"
            )
            return None
        try:
            hpa = self._sanitize(
                self._autoscaling.read_namespaced_horizontal_pod_autoscaler(
                    self.hpa_name, self.namespace, _request_timeout=5
                )
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            row["hpa_error"] = (
                f"HPA {self.namespace}/{self.hpa_name} not found for release {self.release!r}: install the "
                "release with autoscaling.enabled=true (e.g. -f values-prod.yaml) "
                "or check --namespace/--release"
            )
            return None
        row.update(parse_hpa(hpa))
        return hpa

    def _events_row(self) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return events_row(new_events(self._events(), self._seen_events))
        except ApiException as exc:  # e.g. RBAC without events: the rest of the row is still worth having
            return {"hpa_events": f"(events unavailable: {exc.status} {exc.reason})", "hpa_new_events": 0}

    def _events(self) -> Obj:
        if self.hpa_name is None:
            return {"items": []}
        field_selector = f"involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={self.hpa_name}"
        return self._sanitize(
            self._core.list_namespaced_event(
                self.namespace, field_selector=field_selector, _request_timeout=5
            )
        )

    def _workload_row(self, hpa: Obj) -> dict[str, Any]:
        ref = hpa.get("spec", {}).get("scaleTargetRef", {})
        read = {
            "Deployment": self._apps.read_namespaced_deployment_status,
            "StatefulSet": self._apps.read_namespaced_stateful_set_status,
        }.get(ref.get("kind"))
        if read is None:
            return {}
        return parse_workload(self._sanitize(read(ref.get("name"), self.namespace, _request_timeout=5)))

    def _pod_metrics_row(self) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            metrics = self._custom.list_namespaced_custom_object(
                "metrics.k8s.io",
                "v1beta1",
                self.namespace,
                "pods",
                label_selector=self.pod_selector,
                _request_timeout=5,
            )
        except ApiException as exc:
            return {"pod_metrics_error": metrics_api_error(exc.status, exc.body)}
        return parse_pod_metrics(metrics)


def discover(api_client: Any, namespace: str, release: str) -> Watched:
    """The installed release's HPA (labelled with Helm's instance label) and its workload's pod selector;
    no HPA: `hpa_name` None, pods by the instance label (the row then says what is missing)."""
    from kubernetes import client

    by_instance = f"{INSTANCE_LABEL}={release}"
    hpas = client.AutoscalingV2Api(api_client).list_namespaced_horizontal_pod_autoscaler(
        namespace, label_selector=by_instance, _request_timeout=5
    )
    items = api_client.sanitize_for_serialization(hpas).get("items") or []
    if len(items) != 1:
        return Watched(None, by_instance)
    hpa = items[0]
    ref = hpa.get("spec", {}).get("scaleTargetRef", {})
    read = {
        "Deployment": client.AppsV1Api(api_client).read_namespaced_deployment,
        "StatefulSet": client.AppsV1Api(api_client).read_namespaced_stateful_set,
    }.get(ref.get("kind"))
    selector = by_instance
    if read is not None:
        workload = api_client.sanitize_for_serialization(read(ref.get("name"), namespace, _request_timeout=5))
        selector = (
            label_selector(workload.get("spec", {}).get("selector", {}).get("matchLabels") or {}) or selector
        )
    return Watched(hpa["metadata"]["name"], selector)
