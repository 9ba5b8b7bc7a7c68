"""Upgrade layer: `helm upgrade` must not touch fields Kubernetes refuses to change. A new chart version
or appVersion, and the values users change between releases (image tag, labels, resources, settings),
leave every immutable field exactly as it was, for both workload kinds."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtest.chart.release import merge_values
from tests.chart import helpers
from tests.chart.helpers import Manifest

# Kind → the spec fields the API server refuses to change after creation.
IMMUTABLE_FIELDS: dict[str, tuple[str, ...]] = {
    "Deployment": ("selector",),
    "StatefulSet": ("selector", "serviceName", "podManagementPolicy", "volumeClaimTemplates"),
    "Service": ("clusterIP",),
    "Pod": (),
    "Job": ("selector", "template", "completions", "completionMode"),
}
WORKLOADS = {
    "Deployment": {"workload": {"kind": "Deployment"}},
    "StatefulSet": {"workload": {"kind": "StatefulSet"}, "persistence": {"enabled": True}},
}
# What users change between two releases without meaning to recreate anything.
NEXT_RELEASE_VALUES: dict[str, Any] = {
    "image": {"tag": "9.9.9"},
    "commonLabels": {"team": "ml"},
    "podLabels": {"tier": "api"},
    "podAnnotations": {"rollout": "2"},
    "resources": {"requests": {"cpu": "1", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "config": {"logLevel": "debug"},
    "replicaCount": 3,
}


@functools.cache
def bumped_chart() -> Path:
    """A copy of the chart with a new version and appVersion, as the next chart release would have."""
    root = Path(tempfile.mkdtemp(prefix="model-api-next-")) / "model-api"
    shutil.copytree(helpers.CHART_DIR, root)
    chart = yaml.safe_load((root / "Chart.yaml").read_text())
    chart.update(version="99.0.0", appVersion="99.0.0")
    (root / "Chart.yaml").write_text(yaml.safe_dump(chart, sort_keys=False))
    return root


def immutable(objects: list[Manifest]) -> dict[str, Any]:
    """`Kind/name.spec.field` → value for every immutable field of the release's objects."""
    return {
        f"{helpers.label(o)}: spec.{field}": o["spec"].get(field)
        for o in objects
        for field in IMMUTABLE_FIELDS.get(o["kind"], ())
    }


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [key for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_a_new_chart_version_keeps_immutable_fields(kind: str) -> None:
    values = WORKLOADS[kind]
    before = immutable(helpers.render(values))
    after = immutable([o for _, o in helpers.render_uncached(values, chart_dir=bumped_chart())])
    fields = changed(before, after)
    assert fields == [], (
        f"{fields}: a chart or app version bump changes these immutable fields: helm upgrade would be refused"
    )


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_routine_value_changes_keep_immutable_fields(kind: str) -> None:
    values = WORKLOADS[kind]
    before = immutable(helpers.render(values))
    after = immutable(helpers.render(merge_values(values, NEXT_RELEASE_VALUES)))
    fields = changed(before, after)
    assert fields == [], (
        f"{fields}: changing {sorted(NEXT_RELEASE_VALUES)} changes these immutable fields: "
        "helm upgrade would be refused"
    )


def test_the_check_sees_an_immutable_change() -> None:
    """The comparison itself can fail: a different claim size is a change to volumeClaimTemplates."""
    values = WORKLOADS["StatefulSet"]
    before = immutable(helpers.render(values))
    after = immutable(helpers.render(merge_values(values, {"persistence": {"size": "5Gi"}})))
    assert changed(before, after) == ["StatefulSet/model-api: spec.volumeClaimTemplates"]


@pytest.mark.parametrize("kind", list(WORKLOADS))
def test_a_new_chart_version_alone_does_not_roll_the_pods(kind: str) -> None:
    values = merge_values(WORKLOADS[kind], {"apiKey": {"value": "k"}})
    before = helpers.workload(helpers.render(values))
    after = helpers.workload([o for _, o in helpers.render_uncached(values, chart_dir=bumped_chart())])

    def checksums(workload: Manifest) -> dict[str, str]:
        annotations = workload["spec"]["template"]["metadata"].get("annotations") or {}
        return {k: v for k, v in annotations.items() if k.startswith("checksum/")}

    assert checksums(after) == checksums(before), (
        f"{helpers.label(before)}: spec.template.metadata.annotations checksum/* change with the chart "
        "version alone: every chart upgrade would restart every pod"
    )


# --- batch: a Job's pod template cannot change, so a new spec must be a new Job --------------------------

BATCH = {
    "batch": {
        "enabled": True,
        "input": "s3://data/2026-11-28.csv",
        "allowUnverifiedInput": True,
        "output": "s3://data/scored/",
    }
}


def patched(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The immutable fields Helm would patch: of objects in both releases (others are created or deleted)."""
    return [key for key in sorted(set(before) & set(after)) if before[key] != after[key]]


def job_names(objects: list[Manifest]) -> list[str]:
    return [o["metadata"]["name"] for o in helpers.find(objects, "Job")]


def test_an_upgrade_that_changes_the_batch_input_makes_a_new_job() -> None:
    """Helm patches objects of the same kind and name; a changed Job template would be refused with "field
    is immutable". The Job's name follows its spec, so Helm deletes the old Job and creates the new one."""
    before = helpers.render(BATCH)
    after = helpers.render(merge_values(BATCH, {"batch": {"input": "s3://data/2026-11-29.csv"}}))
    names = (job_names(before), job_names(after))
    actual = (len(set(names[0] + names[1])), patched(immutable(before), immutable(after)))
    assert actual == (2, []), f"Job names {names}: an upgrade must not patch a Job's immutable fields"


def test_the_job_check_sees_an_immutable_change() -> None:
    """The comparison can fail: the same Job name with another template is an immutable change."""
    before = helpers.render(BATCH)
    after = helpers.render(merge_values(BATCH, {"batch": {"input": "s3://data/other.csv"}}))
    renamed = [
        {**o, "metadata": {**o["metadata"], "name": job_names(before)[0]}} if o["kind"] == "Job" else o
        for o in after
    ]
    assert patched(immutable(before), immutable(renamed)) == [f"Job/{job_names(before)[0]}: spec.template"]


def test_a_new_chart_version_alone_keeps_the_job() -> None:
    """No rerun of every batch on a chart upgrade: the Job's spec carries no chart or app version label."""
    values = merge_values(BATCH, {"image": {"tag": "0.1.0"}})
    before = job_names(helpers.render(values))
    after = job_names([o for _, o in helpers.render_uncached(values, chart_dir=bumped_chart())])
    assert after == before, "Job: metadata.name changes with the chart version alone"
