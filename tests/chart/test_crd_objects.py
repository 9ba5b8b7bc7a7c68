"""CRD-backed objects (ServiceMonitor now; HTTPRoute, Rollout, ScaledObject later): rendered where the cluster
serves their API or where the user forced it, never by a shipped values file alone — `helm install -f
values-prod.yaml` must work on a cluster without the Prometheus Operator (issue 9 item 5). The tests force
them through their own values, as users of `helm template` do."""

from __future__ import annotations

import pytest

from tests.chart import helpers
from tests.chart.test_install import dry_run_install

BUILT_IN_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}


def is_built_in(api_version: str) -> bool:
    """Whether every conformant cluster serves the API group (core groups and *.k8s.io), no CRD needed."""
    group = api_version.rpartition("/")[0]
    return group in BUILT_IN_GROUPS or group.endswith(".k8s.io")


@pytest.mark.parametrize("value_set", helpers.SHIPPED_SETS, ids=str)
def test_shipped_values_render_no_crd_backed_object(value_set: str) -> None:
    crd_backed = [helpers.label(o) for o in helpers.render_set(value_set) if not is_built_in(o["apiVersion"])]
    assert crd_backed == [], (
        f"{value_set}: renders objects of APIs a cluster may lack; they need the API or an explicit opt-in"
    )


def test_prod_service_monitor_is_rendered_when_forced() -> None:
    forced = helpers.render_set("prod", {"serviceMonitor": {"forceEnable": True}})
    monitor = helpers.get(forced, "ServiceMonitor", helpers.FULLNAME)
    assert monitor["metadata"]["labels"].get("release") == "kube-prometheus-stack", (
        f"{helpers.label(monitor)}: metadata.labels.release (values-prod.yaml serviceMonitor.labels)"
    )


@pytest.mark.parametrize(
    ("case", "values", "noted"),
    [
        ("enabled, API missing", {"serviceMonitor": {"enabled": True}}, True),
        ("enabled and forced", {"serviceMonitor": {"enabled": True, "forceEnable": True}}, False),
        ("disabled", {"serviceMonitor": {"enabled": False}}, False),
    ],
)
def test_notes_say_metrics_are_not_scraped_when_the_monitor_is_skipped(
    case: str, values: dict[str, object], noted: bool
) -> None:
    notes = dry_run_install(values)["notes"]
    assert ("metrics are not scraped" in notes) == noted, f"NOTES.txt for serviceMonitor {case}:\n{notes}"


def test_prod_notes_say_metrics_are_not_scraped_without_the_operator() -> None:
    notes = dry_run_install(helpers.values_for(helpers.VALUE_SETS["prod"]))["notes"]
    assert "metrics are not scraped" in notes, f"NOTES.txt for values-prod.yaml:\n{notes}"
