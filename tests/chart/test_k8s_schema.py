"""Schema layer: every rendered object is strict-valid (unknown fields refused) for every Kubernetes minor
from Chart.yaml's kubeVersion floor to the newest schema shipped, and uses no deprecated or removed API."""

from __future__ import annotations

import pytest

from loadtest.chart import kube_schema
from tests.chart import helpers

MINORS = kube_schema.chart_minors(helpers.CHART_DIR)
CONTAINER = ("spec", "template", "spec", "containers", 0)

# groupVersion → (when it was deprecated or removed for the kinds a chart like ours uses, what to use)
RETIRED_GROUP_VERSIONS: dict[str, tuple[str, str]] = {
    "extensions/v1beta1": ("removed 1.22", "apps/v1, networking.k8s.io/v1"),
    "apps/v1beta1": ("removed 1.16", "apps/v1"),
    "apps/v1beta2": ("removed 1.16", "apps/v1"),
    "networking.k8s.io/v1beta1": ("removed 1.22", "networking.k8s.io/v1"),
    "policy/v1beta1": ("removed 1.25", "policy/v1"),
    "autoscaling/v2beta1": ("removed 1.25", "autoscaling/v2"),
    "autoscaling/v2beta2": ("removed 1.26", "autoscaling/v2"),
    "autoscaling/v1": (
        "superseded by autoscaling/v2 (no memory or custom metrics, no behavior)",
        "autoscaling/v2",
    ),
    "batch/v1beta1": ("removed 1.25", "batch/v1"),
    "rbac.authorization.k8s.io/v1beta1": ("removed 1.22", "rbac.authorization.k8s.io/v1"),
    "discovery.k8s.io/v1beta1": ("removed 1.25", "discovery.k8s.io/v1"),
    "storage.k8s.io/v1beta1": ("removed 1.27", "storage.k8s.io/v1"),
    "scheduling.k8s.io/v1beta1": ("removed 1.22", "scheduling.k8s.io/v1"),
    "coordination.k8s.io/v1beta1": ("removed 1.22", "coordination.k8s.io/v1"),
    "node.k8s.io/v1beta1": ("removed 1.25", "node.k8s.io/v1"),
    "events.k8s.io/v1beta1": ("removed 1.25", "events.k8s.io/v1"),
    "certificates.k8s.io/v1beta1": ("removed 1.22", "certificates.k8s.io/v1"),
    "admissionregistration.k8s.io/v1beta1": ("removed 1.22", "admissionregistration.k8s.io/v1"),
    "apiextensions.k8s.io/v1beta1": ("removed 1.22", "apiextensions.k8s.io/v1"),
    "flowcontrol.apiserver.k8s.io/v1beta2": ("removed 1.29", "flowcontrol.apiserver.k8s.io/v1"),
    "flowcontrol.apiserver.k8s.io/v1beta3": ("removed 1.32", "flowcontrol.apiserver.k8s.io/v1"),
    "monitoring.coreos.com/v1alpha1": ("not the ServiceMonitor API", "monitoring.coreos.com/v1"),
}


@pytest.mark.parametrize("minor", MINORS)
def test_every_object_is_strict_valid(objects: list[helpers.Manifest], minor: str) -> None:
    errors = [message for obj in objects for message in kube_schema.violations(obj, minor)]
    assert errors == [], "\n".join(errors)


def test_no_deprecated_or_removed_api(objects: list[helpers.Manifest]) -> None:
    retired = [
        f"{helpers.label(o)}: apiVersion {o['apiVersion']} is {RETIRED_GROUP_VERSIONS[o['apiVersion']][0]}; "
        f"use {RETIRED_GROUP_VERSIONS[o['apiVersion']][1]}"
        for o in objects
        if o["apiVersion"] in RETIRED_GROUP_VERSIONS
    ]
    assert retired == [], "\n".join(retired)


def test_every_object_has_the_release_namespace(objects: list[helpers.Manifest], value_set: str) -> None:
    expected = {helpers.label(o): helpers.NAMESPACE for o in objects if o["kind"] != "ServiceMonitor"}
    actual = {
        helpers.label(o): o["metadata"].get("namespace") for o in objects if o["kind"] != "ServiceMonitor"
    }
    assert actual == expected, f"{value_set}: metadata.namespace must be the release namespace"


def test_object_names_are_valid_dns_labels(objects: list[helpers.Manifest]) -> None:
    too_long = [
        f"{helpers.label(o)}: metadata.name longer than 63"
        for o in objects
        if len(o["metadata"]["name"]) > 63
    ]
    assert too_long == [], "\n".join(too_long)


@pytest.mark.parametrize(
    ("mistake", "path", "value", "expected_field"),
    [
        (
            "unknown field",
            ("spec", "template", "spec", "containers", 0),
            {"imagePullPolicyy": "Always"},
            "containers[0]",
        ),
        (
            "port as string",
            ("spec", "template", "spec", "containers", 0, "ports", 0),
            {"containerPort": "8080"},
            "containerPort",
        ),
        (
            "bad enum",
            ("spec", "template", "spec", "containers", 0),
            {"imagePullPolicy": "Sometimes"},
            "imagePullPolicy",
        ),
        ("port name too long", (*CONTAINER, "ports", 0), {"name": "http-service-port"}, "ports[0].name"),
        (
            "label value too long",
            ("spec", "template", "metadata", "labels"),
            {"team": "x" * 64},
            "labels[team]",
        ),
        (
            "liveness success threshold",
            (*CONTAINER, "livenessProbe"),
            {"successThreshold": 2},
            "successThreshold",
        ),
    ],
)
def test_schema_check_catches(mistake: str, path: tuple, value: dict, expected_field: str) -> None:
    """The validator itself must be strict: each planted mistake is reported with its field."""
    deployment = helpers.get(helpers.render({"workload": {"kind": "Deployment"}}), "Deployment")
    target = deployment
    for part in path:
        target = target[part]
    target.update(value)
    errors = kube_schema.violations(deployment, MINORS[-1])
    assert len(errors) == 1 and expected_field in errors[0] and "Deployment/model-api" in errors[0], errors


def test_unknown_kind_or_api_is_refused() -> None:
    errors = kube_schema.violations(
        {"apiVersion": "apps/v1beta1", "kind": "Deployment", "metadata": {"name": "x"}}, MINORS[-1]
    )
    assert len(errors) == 1 and "no such apiVersion/kind" in errors[0], errors
