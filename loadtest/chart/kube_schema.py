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


# Validation the API server applies that the OpenAPI schemas do not carry (apimachinery's validation package).
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
DNS_1035_KINDS = {"Service"}  # Service names become DNS labels and env var prefixes


def label_problems(where: str, labels: Mapping[str, Any]) -> list[str]:
    problems = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if (
            len(name) > 63
            or not LABEL_NAME.match(name)
            or (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)))
        ):
            problems.append(f"{where}: invalid label key {key!r}")
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
            problems.append(
                f"{where}[{key}]: invalid label value {value!r} (63 characters, alphanumeric ends)"
            )
    return problems


def name_problems(kind: str, name: Any) -> list[str]:
    if not isinstance(name, str):
        return [f"metadata.name: {name!r} is not a string"]
    pattern, limit = (DNS_1035_LABEL, 63) if kind in DNS_1035_KINDS else (DNS_SUBDOMAIN, 253)
    if len(name) > limit or not pattern.match(name):
        return [f"metadata.name: {name!r} is not a valid {kind} name ({limit} characters, {pattern.pattern})"]
    return []


def pod_spec_problems(spec: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    volume_names = [v.get("name") for v in spec.get("volumes") or []]
    if len(volume_names) != len(set(volume_names)):
        problems.append(f"{where}.volumes: duplicate names {volume_names}")
    for group in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(group) or []):
            at = f"{where}.{group}[{index}]"
            if not DNS_LABEL.match(str(container.get("name", ""))):
                problems.append(f"{at}.name: {container.get('name')!r} is not a DNS label")
            for p, port in enumerate(container.get("ports") or []):
                if "name" in port and (len(port["name"]) > 15 or not PORT_NAME.match(port["name"])):
                    problems.append(
                        f"{at}.ports[{p}].name: {port['name']!r} is not an IANA service name (15 chars)"
                    )
                if not 1 <= int(port.get("containerPort", 0)) <= 65535:
                    problems.append(
                        f"{at}.ports[{p}].containerPort: {port.get('containerPort')!r} out of 1-65535"
                    )
            for probe in ("livenessProbe", "startupProbe"):
                if (container.get(probe) or {}).get("successThreshold", 1) != 1:
                    problems.append(f"{at}.{probe}.successThreshold: must be 1")
            paths = [m.get("mountPath") for m in container.get("volumeMounts") or []]
            if len(paths) != len(set(paths)):
                problems.append(f"{at}.volumeMounts: duplicate mountPath in {paths}")
    return problems


def api_server_violations(obj: Mapping[str, Any]) -> list[str]:
    """The API server's own checks on names, labels, ports and probes, which the schemas leave out."""
    metadata = obj.get("metadata") or {}
    kind = str(obj.get("kind"))
    problems = name_problems(kind, metadata.get("name"))
    problems += label_problems("metadata.labels", metadata.get("labels") or {})
    spec = obj.get("spec") or {}
    template = spec.get("template") if isinstance(spec.get("template"), Mapping) else None
    if template is not None:
        problems += label_problems(
            "spec.template.metadata.labels", (template.get("metadata") or {}).get("labels") or {}
        )
        problems += pod_spec_problems(template.get("spec") or {}, "spec.template.spec")
    elif kind == "Pod":
        problems += pod_spec_problems(spec, "spec")
    if kind == "Service":
        names = [p.get("name") for p in spec.get("ports") or []]
        if len(names) > 1 and (None in names or len(set(names)) != len(names)):
            problems.append(f"spec.ports: with several ports each needs a unique name, got {names}")
    return problems


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


@functools.cache  # Chart.yaml is read once per process (PyYAML would cost more than the validation)
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


def schema_errors(obj: Mapping[str, Any], minor: str) -> list[str]:
    """Strict-schema errors of `obj` for Kubernetes `minor`: "Kind/name: field: problem"."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [f"{object_label(obj)}: apiVersion and kind must be strings, got {api_version!r}, {kind!r}"]
    try:
        compiled = validator(minor, api_version, kind)
    except SchemaViolation as missing:
        return [f"{object_label(obj)}: {missing}"]
    return [
        f"{object_label(obj)}: {field_path(e.instance_path)}: {e.message}" for e in compiled.iter_errors(obj)
    ]


def semantic_errors(obj: Mapping[str, Any]) -> list[str]:
    """The API server's checks the schemas leave out (the same for every minor)."""
    return [f"{object_label(obj)}: {e}" for e in enum_violations(obj) + api_server_violations(obj)]


def violations(obj: Mapping[str, Any], minor: str) -> list[str]:
    """Every error of `obj` for Kubernetes `minor`, each naming the object, the field and the minor."""
    return [f"{error} (Kubernetes {minor})" for error in schema_errors(obj, minor) + semantic_errors(obj)]


def validate(objects: Iterable[Mapping[str, Any]], minors: Iterable[str]) -> None:
    """Raise SchemaViolation listing every error of every object, once per error with the minors it hits."""
    minors = list(minors)
    minors_by_error: dict[str, list[str]] = {}
    for obj in objects:
        for error in semantic_errors(obj):
            minors_by_error[error] = minors
        for minor in minors:
            for error in schema_errors(obj, minor):
                minors_by_error.setdefault(error, []).append(minor)
    if minors_by_error:
        lines = [f"{error} (Kubernetes {', '.join(hit)})" for error, hit in minors_by_error.items()]
        raise SchemaViolation("rendered objects fail the Kubernetes schema:\n  " + "\n  ".join(lines))
