"""The chart tests' API: `render(values, files, show_only)` → validated objects; `get(objects, kind, name)`.

Rendering is Helm's own Go engine in-process (loadtest/chart/release.py over helm-python-sdk); every object of
every render is checked against the strict Kubernetes schema of each minor the chart supports (custom
resources against their vendored CRD schemas, tests/chart/crds/), so "it renders" means "a cluster would
accept it". Renders are cached per values set: most tests share a few.

`MODEL_API_CHART_DIR` points the whole suite at another copy of the chart (mutation checks), and
`MODEL_API_VALUES_DIR` at another directory holding values-dev.yaml and values-prod.yaml.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest.chart import kube_schema, localpod, release
from loadtest.chart.volumes import LocalVolumes, moved_env
from tests.chart import crd_schemas

crd_schemas.register()  # custom resources are checked against their published CRD schemas

Manifest = dict[str, Any]

CHART_DIR = Path(os.environ.get("MODEL_API_CHART_DIR") or release.CHART_DIR).resolve()
VALUES_DIR = Path(os.environ.get("MODEL_API_VALUES_DIR") or release.ROOT).resolve()
RELEASE = release.DEFAULT_RELEASE
NAMESPACE = release.DEFAULT_NAMESPACE
FULLNAME = "model-api"  # the fullname helper returns the release name when it contains the chart name
POD_KINDS = ("Deployment", "StatefulSet")
JOB_KINDS = ("Job", "CronJob")


TEST_VALUES = Path(__file__).resolve().parent / "values"  # the suite's own values, never installed by users


def value_sets() -> dict[str, tuple[Path, ...]]:
    """Every values set the chart ships, by id: default, dev, prod and each ci/*-values.yaml (by glob), and
    prod with the suite's opt-ins for CRD-backed objects (tests/chart/values/)."""
    sets: dict[str, tuple[Path, ...]] = {"default": ()}
    for env in ("dev", "prod"):
        sets[env] = (VALUES_DIR / f"values-{env}.yaml",)
    for path in sorted((CHART_DIR / "ci").glob("*-values.yaml")):
        sets[f"ci/{path.stem}"] = (path,)
    # prod where the Prometheus Operator is installed: the ServiceMonitor that values-prod.yaml cannot force
    # (an install without the CRD would fail) is checked by every layer all the same.
    sets.update({name: (*sets["prod"], *files) for name, files in OPT_IN_SETS.items()})
    return sets


# The suite's own opt-ins on top of prod (CRD-backed objects a shipped file never renders alone).
OPT_IN_SETS = {"prod+prometheus-operator": (TEST_VALUES / "prometheus-operator-values.yaml",)}
VALUE_SETS = value_sets()
SHIPPED_SETS = [name for name in VALUE_SETS if name not in OPT_IN_SETS]


def values_for(files: Iterable[str | Path] = (), values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The merged user values of `files` (in order, like repeated `-f`) then `values` (like `--set`)."""
    return release.load_values([Path(VALUES_DIR, f) for f in files], values)


def render_uncached(
    values: Mapping[str, Any] | None = None,
    files: Iterable[str | Path] = (),
    *,
    release_name: str = RELEASE,
    namespace: str = NAMESPACE,
    chart_dir: Path = CHART_DIR,
    minors: Sequence[str] = (),
) -> list[tuple[str, Manifest]]:
    """(template path, object) for every object rendered, after strict schema validation against `minors`
    (default: every minor the chart supports). No cache."""
    merged = values_for(files, values)
    templates = release.render_templates(
        merged, release=release_name, namespace=namespace, chart_dir=chart_dir
    )
    rendered = release.parse_documents(templates)
    kube_schema.validate([obj for _, obj in rendered], minors or kube_schema.chart_minors(chart_dir))
    return rendered


@functools.cache
def _render_frozen(
    values_json: str, files: tuple[str, ...], release_name: str, namespace: str
) -> tuple[tuple[str, Manifest], ...]:
    rendered = render_uncached(json.loads(values_json), files, release_name=release_name, namespace=namespace)
    return tuple(rendered)


def render(
    values: Mapping[str, Any] | None = None,
    files: Iterable[str | Path] = (),
    show_only: Sequence[str] | None = None,
    *,
    release_name: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[Manifest]:
    """The release's objects (hooks included) for `files` then `values`, each strict-schema valid.

    `show_only` keeps the objects of those templates, e.g. ["templates/deployment.yaml"]. The result is
    a private copy: tests may change it freely.
    """
    key = json.dumps(dict(values or {}), sort_keys=True)
    rendered = _render_frozen(key, tuple(str(f) for f in files), release_name, namespace)
    wanted = [f"/{name.lstrip('/')}" for name in show_only or ()]
    return [
        copy.deepcopy(obj)
        for path, obj in rendered
        if not wanted or any(f"/{path}".endswith(suffix) for suffix in wanted)
    ]


def render_set(set_id: str, values: Mapping[str, Any] | None = None) -> list[Manifest]:
    """The objects of one shipped values set (see VALUE_SETS), plus `values` on top."""
    return render(values, files=VALUE_SETS[set_id])


def merge_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` deep-merged onto `base`, as Helm merges values files (see loadtest.chart.release)."""
    return release.merge_values(base, override)


def find(objects: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return release.find(objects, kind, name)


def get(objects: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The single object of `kind` (and `name`); LookupError naming what is missing otherwise."""
    return release.get(objects, kind, name)


def label(obj: Mapping[str, Any]) -> str:
    """`Kind/name`, the prefix of every failure message."""
    return kube_schema.object_label(obj)


def workload(objects: Iterable[Manifest]) -> Manifest:
    return release.workload(objects)


def main_container(objects: Iterable[Manifest]) -> Manifest:
    return release.main_container(objects)


def is_hook(obj: Mapping[str, Any]) -> bool:
    return release.is_hook(dict(obj))


def pod_template_path(obj: Mapping[str, Any]) -> str:
    """Where an object's pod template sits: "spec.template" (workloads, Job), "spec.jobTemplate.spec.template"
    (CronJob), "" for a bare Pod (the test hook)."""
    if obj["kind"] in (*POD_KINDS, "Job"):
        return "spec.template"
    return "spec.jobTemplate.spec.template" if obj["kind"] == "CronJob" else ""


def pod_template(obj: Mapping[str, Any]) -> Manifest:
    """{metadata, spec} of the pods an object runs (a bare Pod is its own template)."""
    node: Any = obj
    for part in filter(None, pod_template_path(obj).split(".")):
        node = node[part]
    return node


def pod_spec(obj: Mapping[str, Any]) -> Manifest:
    """The pod spec of a workload, Job or CronJob (its template) or of a bare Pod (the test hook)."""
    return pod_template(obj)["spec"]


def pod_template_labels(obj: Mapping[str, Any]) -> dict[str, str]:
    """The labels of the pods an object creates, or of a bare Pod."""
    return dict(pod_template(obj)["metadata"].get("labels") or {})


def pod_owners(objects: Iterable[Manifest]) -> list[Manifest]:
    """Every object that runs pods: the workload, the batch Job or CronJob and any hook Pod."""
    return [obj for obj in objects if obj.get("kind") in (*POD_KINDS, *JOB_KINDS, "Pod")]


def containers(spec: Mapping[str, Any]) -> list[Manifest]:
    """Init and regular containers of a pod spec."""
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def helm_test_pod(objects: Iterable[Manifest]) -> Manifest:
    """The `helm test` hook Pod."""
    hooks = [o for o in objects if o.get("kind") == "Pod" and "test" in hook_types(o)]
    if len(hooks) != 1:
        raise LookupError(f"expected one helm test hook Pod in the rendered release, found {len(hooks)}")
    return hooks[0]


def hook_types(obj: Mapping[str, Any]) -> list[str]:
    annotations = obj.get("metadata", {}).get("annotations") or {}
    return [part.strip() for part in str(annotations.get("helm.sh/hook", "")).split(",") if part.strip()]


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a LabelSelector (matchLabels + matchExpressions) or a plain map selects `labels`."""
    if selector is None:
        return False
    match_labels = selector.get("matchLabels", selector if "matchExpressions" not in selector else {})
    if not isinstance(match_labels, Mapping) or any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if (operator == "Exists") != present and operator in ("Exists", "DoesNotExist"):
            return False
    return True


def local_pod_env(
    objects: list[Manifest], root: Path, external_value: str
) -> tuple[dict[str, str], dict[str, str]]:
    """(env, moved): the serving container's environment as the kubelet builds it, and the entries that
    name files in its volumes pointed at local copies made under `root` (the API key file). A Secret the
    release does not render (an existingSecret, which only a cluster has) holds `external_value`."""
    spec, container = pod_spec(workload(objects)), main_container(objects)
    external = {
        v["secret"]["secretName"]: {item["key"]: external_value for item in v["secret"].get("items") or []}
        for v in spec.get("volumes") or []
        if "secret" in v
    }
    claims = [t["metadata"]["name"] for t in workload(objects)["spec"].get("volumeClaimTemplates") or []]
    mounts = LocalVolumes(objects, spec, root, external, claims).mounts(container)
    env = localpod.container_env(objects, container)
    return env, moved_env(env, mounts)
