"""The HorizontalPodAutoscaler as the API server stores it: the rendered autoscaling/v2 object with the
API's defaults applied (pkg/apis/autoscaling/v2/defaults.go), plus the requests and CPU limit of the pod it
scales.

``HpaSpec.from_release(objects)`` reads it from the rendered release: minReplicas, maxReplicas, metrics
(Resource and ContainerResource, cpu and memory; the API server's 80 % CPU when none), behavior (None when
unset: the controller then takes its legacy path) and, per container, the requests the utilization is
computed against. Unsupported input raises ``HpaSpecError`` naming the field.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class MetricTarget:
    """A Resource or ContainerResource metric: utilization percent of the request, or an average value."""

    resource: str  # "cpu" | "memory"
    average_utilization: int | None = None
    average_value_milli: int | None = None  # milli-units: millicores, or bytes x 1000
    container: str | None = None  # ContainerResource metrics only

    @property
    def name(self) -> str:
        """The metric's name as the controller words it in its events."""
        scope = "container resource" if self.container else "resource"
        if self.average_utilization is not None:
            return f"{self.resource} {scope} utilization (percentage of request)"
        return f"{self.resource} {scope}"


def _metric(spec: Mapping[str, Any], index: int) -> MetricTarget:
    kind = spec.get("type")
    source = {"Resource": spec.get("resource"), "ContainerResource": spec.get("containerResource")}.get(kind)
    if source is None:
        raise HpaSpecError(
            f"metrics[{index}] is of type {kind!r}: the predictor models Resource and ContainerResource "
            f"metrics ({', '.join(SUPPORTED_RESOURCES)}) only"
        )
    if source.get("name") not in SUPPORTED_RESOURCES:
        raise HpaSpecError(f"metrics[{index}] scales on resource {source.get('name')!r}: not modelled")
    target = source.get("target", {})
    if target.get("type") == "Utilization" and target.get("averageUtilization") is not None:
        return MetricTarget(
            source["name"],
            average_utilization=int(target["averageUtilization"]),
            container=source.get("container"),
        )
    if target.get("type") == "AverageValue" and target.get("averageValue") is not None:
        return MetricTarget(
            source["name"],
            average_value_milli=milli_value(target["averageValue"]),
            container=source.get("container"),
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
    def from_release(cls, objects: Iterable[release.Manifest]) -> HpaSpec:
        """From the rendered release (`release.render(values)`); clear errors when it cannot be predicted."""
        objects = list(objects)
        hpas = release.find(objects, "HorizontalPodAutoscaler")
        if not hpas:
            raise HpaSpecError(
                "the rendered release has no HorizontalPodAutoscaler: these values do not enable autoscaling "
                "(set autoscaling.enabled: true, e.g. with values-prod.yaml)"
            )
        return cls.from_manifests(
            release.get(objects, "HorizontalPodAutoscaler"),
            release.workload(objects),
            release.main_container(objects)["name"],
        )

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
