"""Strict Kubernetes schema validation of rendered objects, fast enough to run on every render.

The schemas are the ones `kubernetes-validate` ships (one directory per minor, `-strict` variants with
`additionalProperties: false`). `kubernetes_validate.validate` re-reads the 1.8 MB definitions file on
every call (~17 ms per object); here each minor's definitions are loaded once and each
(minor, apiVersion, kind) validator is compiled once with `jsonschema_rs`, so validating an object
costs microseconds.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jsonschema_rs
import kubernetes_validate.utils
import yaml

SCHEMA_ROOT = Path(str(importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"))
DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"

# Custom resources the chart may render: no schema ships with kubernetes-validate, so we keep a strict
# schema of the fields the chart can set (prometheus-operator's ServiceMonitor CRD, monitoring.coreos.com/v1).
_STRING = {"type": "string"}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": _STRING},
        "matchExpressions": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["key", "operator"],
                "properties": {
                    "key": _STRING,
                    "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": _STRING},
                },
            },
        },
    },
}
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_RELABELINGS = {
    "type": "array",
    "items": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "action": _STRING,
            "modulus": {"type": "integer"},
            "regex": _STRING,
            "replacement": _STRING,
            "separator": _STRING,
            "sourceLabels": {
                "type": "array",
                "items": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
            },
            "targetLabel": _STRING,
        },
    },
}
SERVICE_MONITOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"$ref": f"{DEFINITIONS_URI}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": _STRING},
                    },
                },
                "jobLabel": _STRING,
                "targetLabels": {"type": "array", "items": _STRING},
                "podTargetLabels": {"type": "array", "items": _STRING},
                "sampleLimit": {"type": "integer", "minimum": 0},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": _STRING,
                            "targetPort": {"type": ["string", "integer"]},
                            "path": _STRING,
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                            "honorTimestamps": {"type": "boolean"},
                            "params": {
                                "type": "object",
                                "additionalProperties": {"type": "array", "items": _STRING},
                            },
                            "relabelings": _RELABELINGS,
                            "metricRelabelings": _RELABELINGS,
                        },
                    },
                },
            },
        },
    },
}
CUSTOM_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA,
}


# The OpenAPI schemas leave these enums as plain strings; the API server refuses other values.
# Keyed by field name where the name alone identifies the field's meaning.
ENUM_FIELDS: dict[str, frozenset[str]] = {
    "imagePullPolicy": frozenset({"Always", "IfNotPresent", "Never"}),
    "protocol": frozenset({"TCP", "UDP", "SCTP"}),
    "pathType": frozenset({"Exact", "Prefix", "ImplementationSpecific"}),
    "restartPolicy": frozenset({"Always", "OnFailure", "Never"}),
    "podManagementPolicy": frozenset({"OrderedReady", "Parallel"}),
    "unhealthyPodEvictionPolicy": frozenset({"IfHealthyBudget", "AlwaysAllow"}),
    "externalTrafficPolicy": frozenset({"Cluster", "Local"}),
    "internalTrafficPolicy": frozenset({"Cluster", "Local"}),
    "fsGroupChangePolicy": frozenset({"OnRootMismatch", "Always"}),
    "selectPolicy": frozenset({"Max", "Min", "Disabled"}),
    "whenDeleted": frozenset({"Retain", "Delete"}),
    "whenScaled": frozenset({"Retain", "Delete"}),
    "whenUnsatisfiable": frozenset({"DoNotSchedule", "ScheduleAnyway"}),
    "nodeAffinityPolicy": frozenset({"Honor", "Ignore"}),
    "nodeTaintsPolicy": frozenset({"Honor", "Ignore"}),
    "terminationMessagePolicy": frozenset({"File", "FallbackToLogsOnError"}),
}
# (kind, field path) enums whose field name is too generic ("type") to check by name.
ENUM_PATHS: dict[tuple[str, str], frozenset[str]] = {
    ("Service", "spec.type"): frozenset({"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}),
    ("Deployment", "spec.strategy.type"): frozenset({"RollingUpdate", "Recreate"}),
    ("StatefulSet", "spec.updateStrategy.type"): frozenset({"RollingUpdate", "OnDelete"}),
}
SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost", "Unconfined"})


def enum_violations(obj: Mapping[str, Any]) -> list[str]:
    """Enum fields the schemas leave open, checked as the API server would."""
    errors: list[str] = []

    def walk(node: Any, path: list[str | int]) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                here = [*path, key]
                allowed = ENUM_FIELDS.get(key) if isinstance(value, str) else None
                if key == "type" and path and path[-1] == "seccompProfile":
                    allowed = SECCOMP_TYPES
                allowed = ENUM_PATHS.get((obj.get("kind", ""), field_path(here)), allowed)
                if allowed is not None and value not in allowed:
                    errors.append(f"{field_path(here)}: {value!r} is not one of {sorted(allowed)}")
                walk(value, here)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, [*path, index])

    walk(obj, [])
    return errors


class SchemaViolation(AssertionError):
    """A rendered object is invalid for a Kubernetes version; the message names object, field, version."""


def supported_minors() -> list[str]:
    """Kubernetes minors ("1.30", …) that kubernetes-validate ships strict schemas for, oldest first."""
    minors = {kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()}
    return sorted(minors, key=lambda minor: tuple(int(part) for part in minor.split(".")))


def kube_version_floor(chart_dir: Path) -> str:
    """The minor of the lower bound in Chart.yaml's `kubeVersion` (e.g. ">=1.30.0-0" → "1.30")."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    constraint = str(chart.get("kubeVersion", ""))
    match = re.search(r">=\s*v?(\d+)\.(\d+)", constraint)
    if not match:
        raise ValueError(f"{chart_dir / 'Chart.yaml'}: kubeVersion {constraint!r} has no '>=' lower bound")
    return f"{match.group(1)}.{match.group(2)}"


def chart_minors(chart_dir: Path) -> list[str]:
    """Every supported minor from the chart's kubeVersion floor to the newest schema shipped."""
    floor = tuple(int(part) for part in kube_version_floor(chart_dir).split("."))
    minors = [m for m in supported_minors() if tuple(int(part) for part in m.split(".")) >= floor]
    if not minors:
        raise ValueError(f"no kubernetes-validate schema at or above the chart's kubeVersion floor {floor}")
    return minors


@functools.cache
def _registry(minor: str) -> jsonschema_rs.Registry:
    definitions = json.loads((SCHEMA_ROOT / f"v{minor}.0-local-strict" / "_definitions.json").read_text())
    return jsonschema_rs.Registry([(DEFINITIONS_URI, definitions)])


def schema_file(minor: str, api_version: str, kind: str) -> Path:
    """kubernetes-validate's file naming: `rbac.authorization.k8s.io/v1` Role → `role-rbac-v1.json`."""
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return SCHEMA_ROOT / f"v{minor}.0-local-strict" / f"{kind.lower()}-{group_version}.json"


@functools.cache
def validator(minor: str, api_version: str, kind: str) -> Any:
    """The compiled strict validator for one (minor, apiVersion, kind); SchemaViolation when none exists."""
    schema = CUSTOM_SCHEMAS.get((api_version, kind))
    if schema is None:
        path = schema_file(minor, api_version, kind)
        if not path.is_file():
            raise SchemaViolation(
                f"{kind} {api_version}: Kubernetes {minor} has no such apiVersion/kind "
                f"(no schema {path.name}); removed, misspelled, or a CRD without a schema in kube_schema.py"
            )
        schema = json.loads(path.read_text())
    return jsonschema_rs.validator_for(schema, registry=_registry(minor))


def field_path(parts: Iterable[str | int]) -> str:
    """`spec.template.spec.containers[0].ports[0].containerPort` from a JSON instance path."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<object>"


def object_label(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind', '<no kind>')}/{obj.get('metadata', {}).get('name', '<no name>')}"


def violations(obj: Mapping[str, Any], minor: str) -> list[str]:
    """Every strict-schema error of `obj` against Kubernetes `minor`, each naming the object and the field."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [f"{object_label(obj)}: apiVersion and kind must be strings, got {api_version!r}, {kind!r}"]
    try:
        compiled = validator(minor, api_version, kind)
    except SchemaViolation as missing:
        return [f"{object_label(obj)}: {missing}"]
    schema_errors = [f"{field_path(e.instance_path)}: {e.message}" for e in compiled.iter_errors(obj)]
    return [f"{object_label(obj)}: {e} (Kubernetes {minor})" for e in schema_errors + enum_violations(obj)]


def validate(objects: Iterable[Mapping[str, Any]], minors: Iterable[str]) -> None:
    """Raise SchemaViolation listing every error of every object for every minor."""
    errors = [message for minor in minors for obj in objects for message in violations(obj, minor)]
    if errors:
        raise SchemaViolation("rendered objects fail the Kubernetes schema:\n  " + "\n  ".join(errors))
