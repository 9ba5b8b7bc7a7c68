"""The HorizontalPodAutoscaler as the API server stores it: the rendered autoscaling/v2 object with the
API's defaults applied (pkg/apis/autoscaling/v2/defaults.go), plus the requests and CPU limit of the pod it
scales.

``HpaSpec.from_release(objects)`` reads it from the rendered release: minReplicas, maxReplicas, metrics
(Resource and ContainerResource, cpu and memory; Pods, Object and External metrics on the service's own
series; the API server's 80 % CPU when none), behavior (None when unset: the controller then takes its
legacy path) and, per container, the requests the utilization is computed against. A KEDA ScaledObject is
read as the HPA KEDA's operator makes from it (``from_scaled_object``), with KEDA's own 0 <-> 1 step in
``HpaSpec.keda``; its ``requests-arriving`` trigger (autoscaling.keda.activation.query) is read as the
requests per second arriving in front of the pods, which exist at zero replicas. Unsupported input raises
``HpaSpecError`` naming the field.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadtest.autoscaling.quantity import milli_value, parse_quantity
from loadtest.chart import release

DEFAULT_CPU_UTILIZATION = 80  # the API server's default metric when spec.metrics is empty
SUPPORTED_RESOURCES = ("cpu", "memory")


class HpaSpecError(ValueError):
    """The rendered release cannot be predicted (no HPA, no CPU request, an unsupported metric...)."""


@dataclass(frozen=True)
class ScalingPolicy:
    type: str  # "Pods" | "Percent"
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    policies: tuple[ScalingPolicy, ...]
    select_policy: str = "Max"  # "Max" | "Min" | "Disabled"
    stabilization_window_seconds: int | None = None  # None (scale-down only): the controller's 300 s flag
    tolerance: float | None = None  # per-direction tolerance (HPAConfigurableTolerance); None: 0.1

    @classmethod
    def from_manifest(
        cls, rules: Mapping[str, Any] | None, default: ScalingRules, where: str
    ) -> ScalingRules:
        """API-server defaulting: every unset field of `rules` comes from `default`."""
        if rules is None:
            return default
        policies = default.policies
        if rules.get("policies") is not None:
            policies = tuple(_policy(p, f"{where}.policies[{i}]") for i, p in enumerate(rules["policies"]))
        select = rules.get("selectPolicy", default.select_policy)
        if select not in ("Max", "Min", "Disabled"):
            raise HpaSpecError(f"{where}.selectPolicy must be Max, Min or Disabled, got {select!r}")
        window = rules.get("stabilizationWindowSeconds", default.stabilization_window_seconds)
        tolerance = rules.get("tolerance")
        return cls(
            policies=policies,
            select_policy=select,
            stabilization_window_seconds=None if window is None else int(window),
            tolerance=None if tolerance is None else float(parse_quantity(tolerance)),
        )

    def longest_period(self) -> int:
        return max((p.period_seconds for p in self.policies), default=0)


def _policy(policy: Mapping[str, Any], where: str) -> ScalingPolicy:
    if policy.get("type") not in ("Pods", "Percent"):
        raise HpaSpecError(f"{where}.type must be Pods or Percent, got {policy.get('type')!r}")
    return ScalingPolicy(policy["type"], int(policy["value"]), int(policy["periodSeconds"]))


# The API server's defaults for a behavior that leaves fields out (pkg/apis/autoscaling/v2/defaults.go).
DEFAULT_SCALE_UP = ScalingRules(
    policies=(ScalingPolicy("Pods", 4, 15), ScalingPolicy("Percent", 100, 15)),
    select_policy="Max",
    stabilization_window_seconds=0,
)
DEFAULT_SCALE_DOWN = ScalingRules(policies=(ScalingPolicy("Percent", 100, 15),), select_policy="Max")


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules = DEFAULT_SCALE_UP
    scale_down: ScalingRules = DEFAULT_SCALE_DOWN

    @classmethod
    def from_manifest(cls, behavior: Mapping[str, Any] | None) -> Behavior | None:
        """None when unset. The controller then takes its legacy path, which differs from the defaults above:
        scale-up to at most max(2 x current, 4) per sync, scale-down after the 300 s window, no policies."""
        if behavior is None:
            return None
        return cls(
            ScalingRules.from_manifest(behavior.get("scaleUp"), DEFAULT_SCALE_UP, "behavior.scaleUp"),
            ScalingRules.from_manifest(behavior.get("scaleDown"), DEFAULT_SCALE_DOWN, "behavior.scaleDown"),
        )


# What a custom or external metric measures in the replayed workload (simulation.py reads it):
# requests/s served by the pods (a rate() of their counter), requests in flight in them (a gauge), or
# requests/s arriving at the Service whether or not a pod is ready (an ingress or gateway counter).
SIGNALS = ("rps", "in_flight", "offered_rps")
# The service's own series, as the chart names them (Prometheus Adapter rule, KEDA queries).
POD_METRIC_SIGNALS = {"model_api_requests_per_second": "rps", "model_api_requests_in_flight": "in_flight"}
DEFAULT_RATE_WINDOW = 60.0  # the chart's autoscaling.keda.rateWindow and its adapter rule: rate(...[1m])


@dataclass(frozen=True)
class MetricTarget:
    """One entry of spec.metrics.

    ``source`` is the MetricSpec type: Resource and ContainerResource (cpu, memory: utilization percent of
    the request, or an average value), Pods (an average value per pod), Object and External (a total
    ``value_milli`` or a per-pod ``average_value_milli``). Custom metrics carry ``metric_name`` and the
    ``signal`` the replay feeds them (SIGNALS), with the rate() window of a rate signal.
    """

    resource: str  # "cpu" | "memory"; "" for Pods, Object and External metrics
    average_utilization: int | None = None
    average_value_milli: int | None = None  # milli-units: millicores, or bytes x 1000, or the metric's unit
    container: str | None = None  # ContainerResource metrics only
    source: str = "Resource"  # "Resource" | "ContainerResource" | "Pods" | "Object" | "External"
    metric_name: str | None = None
    value_milli: int | None = None  # Object/External with a Value target
    signal: str | None = None  # SIGNALS, custom metrics only
    rate_window: float = DEFAULT_RATE_WINDOW

    @property
    def name(self) -> str:
        """The metric's name as the controller words it in its events."""
        if self.source == "Pods":
            return f"pods metric {self.metric_name}"
        if self.source in ("Object", "External"):
            return f"{self.source.lower()} metric {self.metric_name}"
        scope = "container resource" if self.container else "resource"
        if self.average_utilization is not None:
            return f"{self.resource} {scope} utilization (percentage of request)"
        return f"{self.resource} {scope}"

    @property
    def is_custom(self) -> bool:
        return self.source in ("Pods", "Object", "External")

    def describe(self) -> str:
        """The target in a line: `cpu 70 %`, `pods model_api_requests_per_second 20/pod`."""
        if self.average_utilization is not None:
            return f"{self.resource} {self.average_utilization} %"
        if not self.is_custom:
            return f"{self.resource} {self.average_value_milli}m average"
        if self.value_milli is not None:
            return f"{self.source.lower()} {self.metric_name} {self.value_milli / 1000:g} total"
        return f"{self.source.lower()} {self.metric_name} {(self.average_value_milli or 0) / 1000:g}/pod"


def signal_of(metric_name: str, where: str) -> str:
    """The replayed quantity behind a custom metric name; HpaSpecError when the replay cannot produce it."""
    if metric_name in POD_METRIC_SIGNALS:
        return POD_METRIC_SIGNALS[metric_name]
    raise HpaSpecError(
        f"{where} scales on metric {metric_name!r}: the predictor replays the service's own "
        f"{', '.join(POD_METRIC_SIGNALS)} only"
    )


def _custom_metric(kind: str, source: Mapping[str, Any], index: int) -> MetricTarget:
    """A Pods, Object or External metric (Pods: AverageValue only, as the API server requires)."""
    where = f"metrics[{index}]"
    name = (source.get("metric") or {}).get("name")
    if not name:
        raise HpaSpecError(f"{where}.{kind.lower()}.metric.name is missing")
    target = source.get("target", {})
    common = {"source": kind, "metric_name": name, "signal": signal_of(name, where)}
    if target.get("type") == "AverageValue" and target.get("averageValue") is not None:
        return MetricTarget("", average_value_milli=milli_value(target["averageValue"]), **common)
    if kind != "Pods" and target.get("type") == "Value" and target.get("value") is not None:
        return MetricTarget("", value_milli=milli_value(target["value"]), **common)
    allowed = "AverageValue+averageValue" if kind == "Pods" else "AverageValue+averageValue or Value+value"
    raise HpaSpecError(f"{where}.target needs {allowed}")


def _metric(spec: Mapping[str, Any], index: int) -> MetricTarget:
    kind = spec.get("type")
    if kind in ("Pods", "Object", "External"):
        return _custom_metric(kind, spec.get(kind[0].lower() + kind[1:]) or {}, index)
    source = {"Resource": spec.get("resource"), "ContainerResource": spec.get("containerResource")}.get(kind)
    if source is None:
        raise HpaSpecError(
            f"metrics[{index}] is of type {kind!r}: the predictor models Resource, ContainerResource, "
            "Pods, Object and External metrics only"
        )
    if source.get("name") not in SUPPORTED_RESOURCES:
        raise HpaSpecError(f"metrics[{index}] scales on resource {source.get('name')!r}: not modelled")
    target = source.get("target", {})
    if target.get("type") == "Utilization" and target.get("averageUtilization") is not None:
        return MetricTarget(
            source["name"],
            average_utilization=int(target["averageUtilization"]),
            container=source.get("container"),
            source=kind,
        )
    if target.get("type") == "AverageValue" and target.get("averageValue") is not None:
        return MetricTarget(
            source["name"],
            average_value_milli=milli_value(target["averageValue"]),
            container=source.get("container"),
            source=kind,
        )
    raise HpaSpecError(
        f"metrics[{index}].target needs Utilization+averageUtilization or AverageValue+averageValue"
    )


@dataclass(frozen=True)
class HpaSpec:
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricTarget, ...]
    behavior: Behavior | None
    # container name -> resource -> request in milli-units; the first container is the service container.
    container_requests: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    cpu_limit_milli: int | None = None  # the service container's CPU limit (usage cannot exceed it)
    name: str = "hpa"
    keda: KedaScaling | None = None  # set when a ScaledObject made this HPA: KEDA's own 0 <-> 1 step

    @classmethod
    def from_manifests(
        cls, hpa: Mapping[str, Any], workload: Mapping[str, Any], service_container: str | None = None
    ) -> HpaSpec:
        """From an autoscaling/v2 HPA object and the Deployment/StatefulSet it targets; `service_container`
        names the container that serves the requests (default: the first)."""
        if hpa.get("apiVersion") != "autoscaling/v2":
            raise HpaSpecError(
                f"HorizontalPodAutoscaler apiVersion is {hpa.get('apiVersion')!r}, expected autoscaling/v2"
            )
        spec = hpa.get("spec", {})
        ref, meta = spec.get("scaleTargetRef", {}), workload.get("metadata", {})
        if (ref.get("kind"), ref.get("name")) != (workload.get("kind"), meta.get("name")):
            raise HpaSpecError(
                f"HPA scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not the workload "
                f"{workload.get('kind')}/{meta.get('name')}"
            )
        metric_specs = spec.get("metrics") or [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION},
                },
            }
        ]
        metrics = tuple(_metric(m, i) for i, m in enumerate(metric_specs))
        pod = workload["spec"]["template"]["spec"]
        # The controller counts restartable (sidecar) init containers with the containers.
        containers = list(pod.get("containers", [])) + [
            c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"
        ]
        requests = {
            c["name"]: {
                r: milli_value(q)
                for r, q in c.get("resources", {}).get("requests", {}).items()
                if r in SUPPORTED_RESOURCES
            }
            for c in containers
        }
        main = next((c for c in containers if c["name"] == service_container), containers[0])
        limit = main.get("resources", {}).get("limits", {}).get("cpu")
        parsed = cls(
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            metrics=metrics,
            behavior=Behavior.from_manifest(spec.get("behavior")),
            container_requests={main["name"]: requests.pop(main["name"]), **requests},
            cpu_limit_milli=None if limit is None else milli_value(limit),
            name=hpa.get("metadata", {}).get("name", "hpa"),
        )
        parsed.check_requests(f"{workload.get('kind')}/{meta.get('name')}")
        return parsed

    @classmethod
    def from_release(cls, objects: Iterable[release.Manifest], name: str | None = None) -> HpaSpec:
        """From the rendered release (`release.render(values)`): its HPA, or the HPA KEDA makes from its
        ScaledObject; with rollout slots (one autoscaler per running slot) the one called `name`. Clear
        errors when it cannot be predicted."""
        objects = list(objects)
        autoscalers = [
            o
            for o in objects
            if o.get("kind") in ("HorizontalPodAutoscaler", "ScaledObject")
            and name in (None, o.get("metadata", {}).get("name"))
        ]
        if not autoscalers:
            wanted = f" named {name!r}" if name else ""
            raise HpaSpecError(
                f"the rendered release has no HorizontalPodAutoscaler or ScaledObject{wanted}: these "
                "values do not enable autoscaling (set autoscaling.enabled: true, e.g. with values-prod.yaml)"
            )
        if len(autoscalers) > 1:
            names = ", ".join(o["metadata"]["name"] for o in autoscalers)
            raise HpaSpecError(
                f"the release has one autoscaler per running slot ({names}): "
                "name the one to replay (--autoscaler NAME)"
            )
        chosen = autoscalers[0]
        if len(release.find(objects, "Deployment") + release.find(objects, "StatefulSet")) == 1:
            workload, container = release.workload(objects), release.main_container(objects)["name"]
        else:  # slots: the autoscaler's own target; the chart puts the service container first
            ref = chosen.get("spec", {}).get("scaleTargetRef", {})
            workload = release.get(objects, ref.get("kind", "Deployment"), ref.get("name"))
            container = workload["spec"]["template"]["spec"]["containers"][0]["name"]
        if chosen["kind"] == "HorizontalPodAutoscaler":
            return cls.from_manifests(chosen, workload, container)
        return cls.from_scaled_object(chosen, workload, container)

    @classmethod
    def from_scaled_object(
        cls, scaled: Mapping[str, Any], workload: Mapping[str, Any], service_container: str | None = None
    ) -> HpaSpec:
        """The HPA KEDA's operator creates for a ScaledObject (keda-hpa-<name>): minReplicas
        max(minReplicaCount, 1), one External metric s<i>-<type> per trigger with the trigger's threshold
        as AverageValue (metricType Value: a Value target), cpu/memory triggers as Resource metrics, and the
        behavior of advanced.horizontalPodAutoscalerConfig; KEDA's own scaling between 0 and 1 in `keda`."""
        spec = scaled.get("spec", {})
        min_count = int(spec.get("minReplicaCount", KEDA_MIN_REPLICA_COUNT))
        metrics, activations = [], []
        for index, trigger in enumerate(spec.get("triggers") or []):
            metric, activation = _trigger_metric(trigger, index)
            metrics.append(metric)
            activations.append(activation)
        if not metrics:
            raise HpaSpecError("the ScaledObject has no triggers: spec.triggers")
        hpa = {
            "apiVersion": "autoscaling/v2",
            "metadata": {"name": f"keda-hpa-{scaled.get('metadata', {}).get('name', '')}"},
            "spec": {
                "scaleTargetRef": spec.get("scaleTargetRef", {}),
                "minReplicas": max(min_count, 1),
                "maxReplicas": int(spec.get("maxReplicaCount", KEDA_MAX_REPLICA_COUNT)),
                # a placeholder needing no request: the parsed triggers replace it below
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "model_api_requests_in_flight"},
                            "target": {"type": "AverageValue", "averageValue": "1"},
                        },
                    }
                ],
                "behavior": ((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get(
                    "behavior"
                ),
            },
        }
        if hpa["spec"]["behavior"] is None:
            del hpa["spec"]["behavior"]
        base = cls.from_manifests(hpa, workload, service_container)
        parsed = dataclasses.replace(
            base,
            metrics=tuple(metrics),
            keda=KedaScaling(
                min_replica_count=min_count,
                polling_interval=float(spec.get("pollingInterval", KEDA_POLLING_INTERVAL)),
                cooldown_period=float(spec.get("cooldownPeriod", KEDA_COOLDOWN_PERIOD)),
                activation_thresholds=tuple(activations),
            ),
        )
        parsed.check_requests(f"{workload.get('kind')}/{workload.get('metadata', {}).get('name')}")
        return parsed

    def check_requests(self, workload_name: str) -> None:
        """Utilization metrics need a request on every counted container, as in the controller."""
        for metric in self.metrics:
            if metric.average_utilization is None:
                continue
            for container, requests in self.container_requests.items():
                if (metric.container in (None, container)) and metric.resource not in requests:
                    raise HpaSpecError(
                        f"container {container!r} of {workload_name} has no "
                        f"resources.requests.{metric.resource}: "
                        f"the HPA cannot compute {metric.resource} utilization without it"
                    )

    def request_milli(self, metric: MetricTarget) -> int:
        """The request a pod contributes to `metric`'s utilization (its container's, or the pod's sum)."""
        if metric.container:
            if metric.container not in self.container_requests:
                raise HpaSpecError(
                    f"ContainerResource metric names container {metric.container!r}, not in the pod"
                )
            return self.container_requests[metric.container].get(metric.resource, 0)
        return sum(r.get(metric.resource, 0) for r in self.container_requests.values())

    @property
    def cpu_target(self) -> int | None:
        return next((m.average_utilization for m in self.metrics if m.resource == "cpu"), None)

    @property
    def main_container(self) -> str:
        """The service container's name: the first of `container_requests` ("" when there is none)."""
        return next(iter(self.container_requests), "")


# KEDA's ScaledObject defaults (keda.sh/v1alpha1): the fields the chart may leave out.
KEDA_MIN_REPLICA_COUNT = 0
KEDA_MAX_REPLICA_COUNT = 100
KEDA_POLLING_INTERVAL = 30.0
KEDA_COOLDOWN_PERIOD = 300.0
_RATE_WINDOW = re.compile(
    r"rate\(\s*(?P<series>[a-zA-Z_:][a-zA-Z0-9_:]*)[^\[]*\[(?P<n>[0-9]+)(?P<unit>[smh])\]"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class KedaScaling:
    """What KEDA's operator does itself, outside the HPA: every `polling_interval` it asks each trigger
    whether it is active (value > activationThreshold); at 0 replicas an active trigger scales the target
    to max(minReplicaCount, 1) (then the HPA takes over); with minReplicaCount 0, `cooldown_period`
    seconds after the last active poll it scales the target to 0."""

    min_replica_count: int = KEDA_MIN_REPLICA_COUNT
    polling_interval: float = KEDA_POLLING_INTERVAL
    cooldown_period: float = KEDA_COOLDOWN_PERIOD
    activation_thresholds: tuple[float, ...] = ()  # per trigger, in the metric's unit


# The chart's trigger on the requests per second counted in front of the pods (an ingress, gateway or mesh
# counter: autoscaling.keda.activation.query), the one that can wake a workload at zero replicas.
ARRIVING_TRIGGER = "requests-arriving"


def rate_window(query: str) -> float | None:
    """The window of the first rate(...[w]) in `query`, in seconds (None without one)."""
    match = _RATE_WINDOW.search(query)
    return None if match is None else float(int(match["n"]) * _UNIT_SECONDS[match["unit"]])


def query_signal(query: str, where: str, trigger_name: str | None = None) -> tuple[str, float]:
    """(signal, rate window in seconds) of a Prometheus trigger's query: the service's own series, or the
    chart's requests-arriving trigger, whose series (the user's proxy's) is read as the offered load."""
    if trigger_name == ARRIVING_TRIGGER:
        return "offered_rps", rate_window(query) or DEFAULT_RATE_WINDOW
    if "model_api_requests_in_flight" in query:
        return "in_flight", DEFAULT_RATE_WINDOW
    match = _RATE_WINDOW.search(query)
    if match and match["series"] == "model_api_requests_total":
        return "rps", rate_window(query) or DEFAULT_RATE_WINDOW
    raise HpaSpecError(
        f"{where}.metadata.query {query!r}: the predictor replays rate(model_api_requests_total[...]), "
        f"model_api_requests_in_flight and the chart's {ARRIVING_TRIGGER} trigger only"
    )


def _trigger_metric(trigger: Mapping[str, Any], index: int) -> tuple[MetricTarget, float]:
    """A KEDA trigger as the metric of KEDA's HPA, and its activation threshold."""
    where = f"triggers[{index}]"
    kind, metadata = trigger.get("type"), trigger.get("metadata") or {}
    metric_type = trigger.get("metricType", "AverageValue")
    if kind in SUPPORTED_RESOURCES:
        value = int(parse_quantity(metadata.get("value", "0")))
        if metric_type == "Utilization":
            return MetricTarget(kind, average_utilization=value), 0.0
        return MetricTarget(kind, average_value_milli=milli_value(metadata["value"])), 0.0
    if kind != "prometheus":
        raise HpaSpecError(f"{where} is of type {kind!r}: the predictor models cpu, memory and prometheus")
    signal, window = query_signal(str(metadata.get("query", "")), where, trigger.get("name"))
    threshold = milli_value(metadata.get("threshold", "0"))
    if threshold <= 0:
        raise HpaSpecError(f"{where}.metadata.threshold must be > 0")
    activation = float(parse_quantity(metadata.get("activationThreshold", "0")))
    name = f"s{index}-prometheus"
    if metric_type == "Value":
        target = MetricTarget("", source="External", metric_name=name, value_milli=threshold, signal=signal)
    elif metric_type == "AverageValue":
        target = MetricTarget(
            "", source="External", metric_name=name, average_value_milli=threshold, signal=signal
        )
    else:
        raise HpaSpecError(f"{where}.metricType must be AverageValue or Value for a prometheus trigger")
    return dataclasses.replace(target, rate_window=window), activation
