"""The published CRD schemas (vendored in tests/chart/crds/, provenance in each file's `x-vendored`) turned
into strict JSON Schemas, and registered with the strict validator so every render checks custom resources
exactly as it checks core objects.

A CRD's `openAPIV3Schema` is structural OpenAPI: unknown fields are pruned by the API server, and refused
by `kubectl apply` (server-side field validation `Strict`, the default since Kubernetes 1.27). So here
every object schema that lists its properties and does not say `x-kubernetes-preserve-unknown-fields`
refuses other keys, `nullable` admits null, `x-kubernetes-int-or-string` admits both, embedded resources
admit apiVersion/kind/metadata, and the top-level metadata is checked as the core ObjectMeta.
CEL rules (`x-kubernetes-validations`) are not evaluated: no CEL engine runs here.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from loadtest.chart import kube_schema

CRD_DIR = Path(__file__).parent / "crds"
OBJECT_META = {
    "$ref": f"{kube_schema.DEFINITIONS_URI}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
}
EMBEDDED_FIELDS = {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"type": "object"},
}


def strict(node: Any) -> Any:
    """The JSON Schema a structural OpenAPI schema node means, with unknown fields refused."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("x-kubernetes-embedded-resource"):
        out["properties"] = {**EMBEDDED_FIELDS, **out.get("properties", {})}
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def vendored_files() -> list[Path]:
    return sorted(CRD_DIR.glob("*.json"))


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → strict JSON Schema of every vendored CRD."""
    schemas = {}
    for path in vendored_files():
        document = json.loads(path.read_text())
        source = document["x-vendored"]
        schema = strict(document["schema"])
        properties = schema.setdefault("properties", {})
        properties["apiVersion"] = {"const": source["apiVersion"]}
        properties["kind"] = {"const": source["kind"]}
        properties["metadata"] = OBJECT_META
        schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
        schema["additionalProperties"] = False
        schemas[(source["apiVersion"], source["kind"])] = schema
    return schemas


def provenance() -> dict[tuple[str, str], str]:
    """(apiVersion, kind) → "repository@tag:path" of each vendored schema."""
    out = {}
    for path in vendored_files():
        source = json.loads(path.read_text())["x-vendored"]
        where = f"{source['repository']}@{source['tag']}:{source['path']}"
        out[(source["apiVersion"], source["kind"])] = where
    return out


def register() -> None:
    """Make the strict validator use the vendored schemas (they replace any hand-written one)."""
    kube_schema.CUSTOM_SCHEMAS.update(crd_schemas())
    kube_schema.validator.cache_clear()
