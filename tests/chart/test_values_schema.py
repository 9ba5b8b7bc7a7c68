"""Values layer: the shipped values files satisfy values.schema.json; bad values are refused by Helm itself
(schema or `model-api.validateValues`) with a message naming the key to fix; valid edge values render."""

from __future__ import annotations

import json
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml

from loadtest.chart import release
from tests.chart import helpers

HOST = "api.example.com"
ROUTE = {"host": HOST, "paths": [{"path": "/", "pathType": "Prefix"}]}
DIGEST = "sha256:" + "0123456789abcdef" * 4


def chart_defaults() -> dict[str, Any]:
    return yaml.safe_load((helpers.CHART_DIR / "values.yaml").read_text())


def test_shipped_values_satisfy_the_values_schema(value_set: str) -> None:
    schema = json.loads((helpers.CHART_DIR / "values.schema.json").read_text())
    merged = release.merge_values(chart_defaults(), helpers.values_for(helpers.VALUE_SETS[value_set]))
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(merged)
    ]
    assert errors == [], f"{value_set}: values.schema.json refuses the merged values"


def test_values_schema_is_draft_07_and_closed() -> None:
    schema = json.loads((helpers.CHART_DIR / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema.get("additionalProperties") is False, (
        "values.schema.json: unknown top-level keys must be refused"
    )


# (key the message must name, values). Each is a mistake a user makes; Helm must refuse it at render time.
BAD_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("replicaCount", {"replicaCount": -1}),
    ("replicaCount", {"replicaCount": "2"}),
    ("replicas", {"replicas": 2}),
    ("image.tags", {"image": {"tags": "1.0"}}),
    ("image.pullPolicy", {"image": {"pullPolicy": "Sometimes"}}),
    ("image.repository", {"image": {"repository": ""}}),
    ("image.repository", {"image": {"repository": "Ghcr.io/Model"}}),
    ("image.digest", {"image": {"digest": "sha256:xyz"}}),
    ("image.tag", {"image": {"tag": "v1 beta"}}),
    ("workload.kind", {"workload": {"kind": "DaemonSet"}}),
    ("workload.podManagementPolicy", {"workload": {"podManagementPolicy": "Random"}}),
    ("workload.strategy", {"workload": {"kind": "StatefulSet", "strategy": {"type": "Recreate"}}}),
    ("workload.updateStrategy", {"workload": {"updateStrategy": {"type": "OnDelete"}}}),
    (
        "workload.strategy.rollingUpdate.maxUnavailable",
        {"workload": {"strategy": {"rollingUpdate": {"maxUnavailable": "50"}}}},
    ),
    ("containerPort", {"containerPort": 0}),
    (  # a CPU limit of 1.2 x the request caps utilization at 120 %
        "autoscaling.targetCPUUtilizationPercentage",
        {
            "autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": 150},
            "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1200m", "memory": "256Mi"}},
        },
    ),
    (  # the default memory limit is 2 x the request: 200 % at most
        "autoscaling.targetMemoryUtilizationPercentage",
        {"autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 250}},
    ),
    ("extraEnv", {"extraEnv": [{"name": "MODEL_API_API_KEY_FILE", "value": "/elsewhere"}]}),
    ("containerPort", {"containerPort": 70000}),
    ("containerPort", {"containerPort": "8080"}),
    ("service.type", {"service": {"type": "ExternalName"}}),
    ("service.port", {"service": {"port": 0}}),
    ("service.nodePort", {"service": {"type": "NodePort", "nodePort": 70000}}),
    ("service.nodePort", {"service": {"type": "ClusterIP", "nodePort": 30080}}),
    ("service.loadBalancerSourceRanges", {"service": {"loadBalancerSourceRanges": ["not-a-cidr"]}}),
    ("config.logLevel", {"config": {"logLevel": "verbose"}}),
    ("config.logFormat", {"config": {"logFormat": "xml"}}),
    ("config.maxBodyBytes", {"config": {"maxBodyBytes": 0}}),
    ("config.drainSeconds", {"config": {"drainSeconds": -1}}),
    ("config.modelPath", {"config": {"modelPath": "relative/iris.onnx"}}),
    ("resources.limits.memory", {"resources": {"limits": {"memory": "1GB"}}}),
    ("resources.requests.cpu", {"resources": {"requests": {"cpu": "lots"}}}),
    (
        "resources.requests.memory",
        {"resources": {"requests": {"memory": "512Mi"}, "limits": {"memory": "256Mi"}}},
    ),
    ("autoscaling.minReplicas", {"autoscaling": {"enabled": True, "minReplicas": 0}}),
    ("autoscaling.minReplicas", {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}),
    ("autoscaling.targetCPUUtilizationPercentage", {"autoscaling": {"targetCPUUtilizationPercentage": 0}}),
    (
        "autoscaling.targetCPUUtilizationPercentage",
        {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}},
    ),
    # null would delete the hardened default silently; `{}` stays possible as an explicit choice
    ("securityContext", {"securityContext": None}),
    ("podSecurityContext", {"podSecurityContext": None}),
    ("pdb.unhealthyPodEvictionPolicy", {"pdb": {"unhealthyPodEvictionPolicy": "Never"}}),
    ("pdb.minAvailable", {"pdb": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1}}),
    ("pdb.maxUnavailable", {"pdb": {"enabled": True, "maxUnavailable": 0}}),
    ("pdb.minAvailable", {"pdb": {"enabled": True, "minAvailable": "100%", "maxUnavailable": None}}),
    ("ingress.hosts", {"ingress": {"enabled": True}}),
    (
        "ingress.hosts.0.paths.0.pathType",
        {"ingress": {"hosts": [{"host": HOST, "paths": [{"path": "/", "pathType": "Regex"}]}]}},
    ),
    (
        "ingress.tls",
        {
            "ingress": {
                "enabled": True,
                "hosts": [ROUTE],
                "tls": [{"hosts": ["other.example.com"], "secretName": "t"}],
            }
        },
    ),
    ("apiKey.existingSecret", {"apiKey": {"value": "k", "existingSecret": "made-elsewhere"}}),
    ("apiKey.existingSecret", {"apiKey": {"existingSecret": "Bad_Name"}}),
    ("securityContext.runAsUser", {"securityContext": {"runAsUser": "root"}}),
    ("securityContext.runAsUser", {"securityContext": {"runAsUser": 0}}),
    ("preStopSleepSeconds", {"preStopSleepSeconds": 0}),
    ("terminationGracePeriodSeconds", {"terminationGracePeriodSeconds": 10}),
    ("persistence.enabled", {"persistence": {"enabled": True}}),
    ("networkPolicy.enabled", {"networkPolicy": {"enabled": "yes"}}),
    ("serviceMonitor.interval", {"serviceMonitor": {"interval": "30 seconds"}}),
    (
        "serviceMonitor.scrapeTimeout",
        {"serviceMonitor": {"enabled": True, "forceEnable": True, "interval": "10s", "scrapeTimeout": "30s"}},
    ),
    ("tests.enabled", {"tests": {"enabled": 1}}),
    ("readinessProbe.periodSeconds", {"readinessProbe": {"periodSeconds": 0}}),
    ("livenessProbe.successThreshold", {"livenessProbe": {"successThreshold": 2}}),
    ("tmpVolume.medium", {"tmpVolume": {"medium": "Disk"}}),
    ("extraEnv", {"extraEnv": "FOO=bar"}),
    ("extraEnv.0.name", {"extraEnv": [{"value": "x"}]}),
    ("extraEnv", {"extraEnv": [{"name": "MODEL_API_API_KEY", "value": "x"}]}),
    ("nameOverride", {"nameOverride": "Bad_Name"}),
    ("fullnameOverride", {"fullnameOverride": "a" * 70}),
    ("fullnameOverride", {"fullnameOverride": "1api"}),
    ("serviceAccount.automount", {"serviceAccount": {"automount": "false"}}),
    ("commonLabels", {"commonLabels": {"team": 1}}),
    ("podLabels", {"podLabels": {"app.kubernetes.io/name": "other"}}),
    ("cacheVolume.mountPath", {"cacheVolume": {"mountPath": "relative"}}),
]


def names_key(message: str, key: str) -> bool:
    """Whether Helm's message names `key`: dotted (validateValues) or as a JSON pointer (schema errors),
    or, for an unknown key, its parent's pointer and the key itself."""
    parts = key.split(".")
    pointer = "/" + "/".join(parts)
    parent = "/" + "/".join(parts[:-1]) if len(parts) > 1 else ""
    unknown_key = f"at '{parent}'" in message and f"'{parts[-1]}'" in message
    return key in message or pointer in message or unknown_key


@pytest.mark.parametrize(
    ("key", "values"), BAD_VALUES, ids=[f"{k}={json.dumps(v)[:40]}" for k, v in BAD_VALUES]
)
def test_bad_value_is_refused_naming_the_key(key: str, values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmError) as refused:
        helpers.render(values)
    message = str(refused.value)
    assert names_key(message, key), f"Helm refused {values} without naming {key}: {message}"


def test_enough_bad_values() -> None:
    assert len(BAD_VALUES) >= 30


VALID_EDGES: list[tuple[str, dict[str, Any]]] = [
    # issue 9: utilization is a percentage of the request; without a CPU limit a pod can use more
    (
        "cpu target above 100 % without a cpu limit",
        {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": 150}},
    ),
    (
        "memory target at the limit",
        {"autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 200}},
    ),
    ("zero replicas", {"replicaCount": 0}),
    ("highest ports", {"containerPort": 65535, "service": {"port": 65535}}),
    ("unprivileged lowest port", {"containerPort": 1024}),
    ("node port", {"service": {"type": "NodePort", "nodePort": 30080}}),
    (
        "load balancer",
        {
            "service": {
                "type": "LoadBalancer",
                "externalTrafficPolicy": "Local",
                "loadBalancerSourceRanges": ["10.0.0.0/8", "2001:db8::/32"],
            }
        },
    ),
    ("digest", {"image": {"digest": DIGEST}}),
    ("tag with dots and dashes", {"image": {"tag": "1.2.3_build.4-rc1"}}),
    (
        "decimal quantities",
        {"resources": {"requests": {"cpu": "1.5", "memory": "1.5Gi"}, "limits": {"memory": "2G"}}},
    ),
    (
        "millicores",
        {"resources": {"requests": {"cpu": "1500m", "memory": "512M"}, "limits": {"memory": "512M"}}},
    ),
    ("hpa min equals max", {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 2}}),
    (
        "hpa memory only",
        {
            "autoscaling": {
                "enabled": True,
                "targetCPUUtilizationPercentage": None,
                "targetMemoryUtilizationPercentage": 100,
            }
        },
    ),
    (
        "pdb percentage",
        {"replicaCount": 2, "pdb": {"enabled": True, "minAvailable": "50%", "maxUnavailable": None}},
    ),
    (
        "pdb max unavailable percentage",
        {"replicaCount": 4, "pdb": {"enabled": True, "maxUnavailable": "25%"}},
    ),
    ("no drain", {"config": {"drainSeconds": 0, "maxNdigits": 0}}),
    ("global values", {"global": {"imageRegistry": "registry.example.com"}}),
    ("longest fullname", {"fullnameOverride": "a" * 63}),
    ("short name override", {"nameOverride": "x"}),
    ("longest name override", {"nameOverride": "n" * 63}),
    (
        "wildcard host",
        {"ingress": {"enabled": True, "hosts": [{**ROUTE, "host": "*.example.com"}]}},
    ),
    (
        "extra env from field",
        {"extraEnv": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
    ),
    (
        "extra volume",
        {
            "extraVolumes": [{"name": "scratch", "emptyDir": {}}],
            "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
        },
    ),
    (
        "pod placement",
        {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "priorityClassName": "high",
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        },
    ),
    ("external service account", {"serviceAccount": {"create": False, "name": "shared-runner"}}),
    ("tmp in memory", {"tmpVolume": {"medium": "Memory"}}),
    ("allow external", {"networkPolicy": {"enabled": True, "allowExternal": True}}),
    (
        "statefulset with storage class",
        {
            "workload": {
                "kind": "StatefulSet",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            },
            "persistence": {"enabled": True, "storageClass": "standard"},
        },
    ),
    (
        "monitor in another namespace",
        {"serviceMonitor": {"enabled": True, "forceEnable": True, "namespace": "monitoring"}},
    ),
    (
        "two hosts with tls",
        {
            "ingress": {
                "enabled": True,
                "hosts": [ROUTE, {**ROUTE, "host": "b.example.com"}],
                "tls": [{"secretName": "t", "hosts": [HOST, "b.example.com"]}],
            }
        },
    ),
]


@pytest.mark.parametrize(("case", "values"), VALID_EDGES, ids=[case for case, _ in VALID_EDGES])
def test_valid_edge_value_renders(case: str, values: dict[str, Any]) -> None:
    objects = helpers.render(values)  # raises on refusal or on a Kubernetes schema error
    assert helpers.workload(objects)["metadata"]["name"], case
