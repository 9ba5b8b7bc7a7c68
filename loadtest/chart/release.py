"""The rendered release: the chart rendered by Helm's own Go engine (helm-python-sdk), parsed into objects.

Everything that needs to know how the service is deployed (the test suite, the demo, the HPA
predictor) reads it from here rather than restating the chart's values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "model-api"
DEFAULT_RELEASE = "model-api"
DEFAULT_NAMESPACE = "default"

Manifest = dict[str, Any]
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing for user values: maps merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(
    files: Iterable[str | Path] = (), overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Merge values files in order (like repeated `helm -f`), then `overrides` (like `--set`)."""
    values: dict[str, Any] = {}
    for path in files:
        values = merge_values(values, yaml.safe_load(Path(ROOT, path).read_text()) or {})
    return merge_values(values, overrides or {})


def render_templates(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    chart_dir: Path = CHART_DIR,
) -> dict[str, str]:
    """Template path → rendered text, as `helm template` would produce it (values.schema.json enforced)."""
    chart = helm_python.Chart.load(str(chart_dir))
    try:
        return chart.render(dict(values or {}), name=release, namespace=namespace, is_install=True)
    finally:
        chart.close()


def parse_documents(templates: Mapping[str, str]) -> list[tuple[str, Manifest]]:
    """(template path, object) for every Kubernetes object in the rendered templates, in template order
    (NOTES.txt and empty documents left out). libyaml's parser: the pure-Python one outlasts Helm's render."""
    return [
        (path, document)
        for path in sorted(templates)
        if not path.endswith("NOTES.txt")
        for document in yaml.load_all(templates[path], Loader=YAML_LOADER)
        if document
    ]


def parse_manifests(templates: Mapping[str, str]) -> list[Manifest]:
    """Every Kubernetes object in the rendered templates."""
    return [document for _, document in parse_documents(templates)]


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
) -> list[Manifest]:
    """The release's objects for `values`, hooks included."""
    return parse_manifests(render_templates(values, release=release, namespace=namespace))


def find(objects: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    """Objects of `kind` (and `name`, when given)."""
    return [
        obj
        for obj in objects
        if obj.get("kind") == kind and (name is None or obj.get("metadata", {}).get("name") == name)
    ]


def get(objects: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The single object of `kind` (and `name`); a clear error when there is none or several."""
    matches = find(objects, kind, name)
    if len(matches) != 1:
        label = f"{kind}/{name}" if name else kind
        raise LookupError(f"expected exactly one {label} in the rendered release, found {len(matches)}")
    return matches[0]


def is_hook(obj: Manifest) -> bool:
    return "helm.sh/hook" in obj.get("metadata", {}).get("annotations", {})


def workload(objects: Iterable[Manifest]) -> Manifest:
    """The release's Deployment or StatefulSet."""
    found = [o for o in objects if o.get("kind") in ("Deployment", "StatefulSet")]
    if len(found) != 1:
        raise LookupError(
            f"expected one Deployment or StatefulSet in the rendered release, found {len(found)}"
        )
    return found[0]


def main_container(objects: Iterable[Manifest]) -> Manifest:
    """The service container of the release's workload: the one whose ports the release's Services target
    (by name or number), read from the rendered objects rather than assumed from the chart's name; the
    only container when there is one."""
    objects = list(objects)
    containers = workload(objects)["spec"]["template"]["spec"]["containers"]
    if len(containers) == 1:
        return containers[0]
    targets = {
        port.get("targetPort", port.get("port"))
        for service in find(objects, "Service")
        if not is_hook(service)
        for port in service.get("spec", {}).get("ports") or []
    }
    serving = [
        c
        for c in containers
        if any(p.get("name") in targets or p.get("containerPort") in targets for p in c.get("ports") or [])
    ]
    if len(serving) != 1:
        names = [c["name"] for c in serving or containers]
        raise LookupError(
            f"expected one container serving the release's Service ports {targets}, found {names}"
        )
    return serving[0]
