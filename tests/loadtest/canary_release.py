"""A canary release in the shapes the chart renders for `rollout.strategy: canary` (two slot Deployments and
Services, an HTTPRoute or a canary Ingress pair, a ServiceMonitor keeping slot and version as target labels,
an Argo AnalysisTemplate), built from today's real render of the chart's defaults: the pods are the chart's
own (command, env, probes); only the rollout objects around them are written here, until the chart renders
them itself."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from loadtest.chart import release

Manifest = dict[str, Any]
SLOT_LABEL = "model-api.io/slot"
VERSION_LABEL = "model-api.io/model-version"
FULLNAME = "model-api"
ROUTES = "/api.*|/v1/.*|/v2/.*"  # prediction routes: not /metrics, not the probes
REQUESTS = 'model_api_requests_total{service="{{args.service-name}}",route=~"' + ROUTES + '"'
ERROR_RATIO = (
    # no 5xx series at all is a ratio of 0, not "no data"
    f'(sum(rate({REQUESTS},status=~"5.."}}[1m])) or vector(0)) / sum(rate({REQUESTS}}}[1m]))'
)
P99 = (
    "histogram_quantile(0.99, sum by (le) (rate(model_api_request_duration_seconds_bucket"
    '{service="{{args.service-name}}",route=~"' + ROUTES + '"}[1m])))'
)


def analysis_template(max_error_ratio: float = 0.05, max_p99_s: float = 0.1) -> Manifest:
    def metric(name: str, query: str, limit: float) -> Manifest:
        return {
            "name": name,
            "interval": "1m",
            "count": 3,
            "successCondition": f"len(result) > 0 && !isNaN(result[0]) && result[0] <= {limit}",
            "failureCondition": f"len(result) > 0 && result[0] > {limit}",
            "provider": {"prometheus": {"address": "http://prometheus:9090", "query": query}},
        }

    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": FULLNAME},
        "spec": {
            "args": [{"name": "service-name"}],
            "metrics": [
                metric("error-ratio", ERROR_RATIO, max_error_ratio),
                metric("p99-latency", P99, max_p99_s),
            ],
        },
    }


def _slot(deployment: Manifest, service: Manifest, slot: str, version: str, replicas: int) -> list[Manifest]:
    workload = copy.deepcopy(deployment)
    workload["metadata"]["name"] = f"{FULLNAME}-{slot}"
    workload["spec"]["replicas"] = replicas
    workload["spec"]["selector"]["matchLabels"][SLOT_LABEL] = slot
    workload["spec"]["template"]["metadata"]["labels"].update({SLOT_LABEL: slot, VERSION_LABEL: version})
    container = workload["spec"]["template"]["spec"]["containers"][0]
    container.setdefault("env", []).append({"name": "MODEL_API_MODEL_VERSION", "value": version})
    front = copy.deepcopy(service)
    front["metadata"]["name"] = f"{FULLNAME}-{slot}"
    front["metadata"]["labels"][SLOT_LABEL] = slot
    front["spec"]["selector"][SLOT_LABEL] = slot
    return [workload, front]


def canary_release(
    *,
    weight: int = 20,
    router: str = "gatewayAPI",
    header: str = "X-Canary",
    header_value: str = "always",
    active: str = "blue",
    versions: tuple[str, str] = ("1.0.0", "1.1.0"),
) -> list[Manifest]:
    base = release.render({})
    deployment, service = release.get(base, "Deployment"), release.get(base, "Service", FULLNAME)
    objects = [o for o in base if o["kind"] not in ("Deployment", "Service") and not release.is_hook(o)]
    candidate = "green" if active == "blue" else "blue"
    for slot, version in zip(("blue", "green"), versions, strict=True):
        objects += _slot(deployment, service, slot, version, 1)
    main = copy.deepcopy(service)
    main["spec"]["selector"][SLOT_LABEL] = active
    objects.append(main)
    if router == "gatewayAPI":
        ref = {"group": "", "kind": "Service", "port": 80}
        objects.append({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": FULLNAME},
            "spec": {
                "parentRefs": [{"name": "gateway"}],
                "rules": [
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"},
                                     "headers": [{"type": "Exact", "name": header, "value": header_value}]}],
                        "backendRefs": [{**ref, "name": f"{FULLNAME}-{candidate}", "weight": 100}],
                    },
                    {
                        "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                        "backendRefs": [
                            {**ref, "name": f"{FULLNAME}-{active}", "weight": 100 - weight},
                            {**ref, "name": f"{FULLNAME}-{candidate}", "weight": weight},
                        ],
                    },
                ],
            },
        })  # fmt: skip
    elif router == "ingressNginx":

        def ingress(name: str, backend: str, annotations: dict[str, str]) -> Manifest:
            path = {
                "path": "/",
                "pathType": "Prefix",
                "backend": {"service": {"name": backend, "port": {"name": "http"}}},
            }
            return {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": name, "annotations": annotations},
                "spec": {
                    "ingressClassName": "nginx",
                    "rules": [{"host": "model-api.local", "http": {"paths": [path]}}],
                },
            }

        objects.append(ingress(FULLNAME, FULLNAME, {}))
        prefix = "nginx.ingress.kubernetes.io/"
        objects.append(ingress(f"{FULLNAME}-canary", f"{FULLNAME}-{candidate}", {
            prefix + "canary": "true",
            prefix + "canary-weight": str(weight),
            prefix + "canary-by-header": header,
        }))  # fmt: skip
    objects.append({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": FULLNAME},
        "spec": {
            "jobLabel": "app.kubernetes.io/name",
            "namespaceSelector": {"matchNames": ["default"]},
            "selector": {"matchLabels": dict(deployment["spec"]["selector"]["matchLabels"])},
            "podTargetLabels": [SLOT_LABEL, VERSION_LABEL],
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    })  # fmt: skip
    objects.append(analysis_template())
    return objects


def replicas_release(stable_replicas: int = 3, candidate_replicas: int = 1) -> list[Manifest]:
    """rollout.canary.router: replicas — one Service over both slots, the split by replica counts."""
    objects = [o for o in canary_release() if o["kind"] != "HTTPRoute"]
    for obj in objects:
        if obj["kind"] == "Service" and obj["metadata"]["name"] == FULLNAME:
            del obj["spec"]["selector"][SLOT_LABEL]
        if obj["kind"] == "Deployment":
            slot = obj["spec"]["selector"]["matchLabels"][SLOT_LABEL]
            obj["spec"]["replicas"] = stable_replicas if slot == "blue" else candidate_replicas
    return objects


def write_manifest(path: Path, objects: list[Manifest]) -> Path:
    """The objects as `helm template` prints them, for `python -m loadtest canary --manifest`."""
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return path
