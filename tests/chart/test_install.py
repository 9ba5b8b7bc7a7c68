"""Install layer: a client dry-run `helm install` through the SDK (in-memory release storage) for every
values set, NOTES.txt without warnings for prod, and — when a `helm` binary exists — the CLI's render
compared with the in-process one."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import helm_python
import pytest
import yaml

from tests.chart import helpers

WARNING = "WARNING"


def dry_run_install(values: dict[str, Any]) -> dict[str, Any]:
    config = helm_python.Config(storage_driver="memory")
    try:
        return config.install(
            str(helpers.CHART_DIR), helpers.RELEASE, values, namespace=helpers.NAMESPACE, dry_run="client"
        )
    finally:
        config.close()


def identities(objects: list[helpers.Manifest]) -> list[tuple[str, str]]:
    return sorted((o["kind"], o["metadata"]["name"]) for o in objects)


def test_client_dry_run_install(value_set: str) -> None:
    installed = dry_run_install(helpers.values_for(helpers.VALUE_SETS[value_set]))
    manifest = [o for o in yaml.safe_load_all(installed["manifest"]) if o]
    expected = identities([o for o in helpers.render_set(value_set) if not helpers.is_hook(o)])
    assert (installed["status"], identities(manifest)) == ("pending-install", expected), (
        f"{value_set}: the SDK's install manifest differs from the rendered release"
    )


def warning_lines(notes: str) -> list[str]:
    return [line for line in notes.splitlines() if WARNING in line]


def test_prod_notes_have_no_warnings() -> None:
    notes = dry_run_install(helpers.values_for(helpers.VALUE_SETS["prod"]))["notes"]
    assert notes.strip(), "NOTES.txt rendered nothing for prod"
    assert warning_lines(notes) == [], f"NOTES.txt warns for values-prod.yaml:\n{notes}"


@pytest.mark.parametrize(
    ("case", "values"),
    [
        ("mutable tag", {"image": {"tag": "latest"}}),
        (
            "exposed without an API key",
            {
                "ingress": {
                    "enabled": True,
                    "hosts": [{"host": "a.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                }
            },
        ),
    ],
)
def test_notes_warn_about_risky_values(case: str, values: dict[str, Any]) -> None:
    notes = dry_run_install(values)["notes"]
    assert warning_lines(notes), f"NOTES.txt gives no WARNING for {case}: {values}"


EXPOSED = {
    "ingress": {
        "enabled": True,
        "hosts": [{"host": "a.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
    }
}


@pytest.mark.parametrize(
    ("case", "values", "expected"),
    [
        ("ClusterIP with an API key", {"apiKey": {"value": "k"}}, '-H "X-API-Key: $API_KEY"'),
        (
            "API key key name with a dot",
            {"apiKey": {"existingSecret": "s", "existingSecretKey": "api.key"}},
            "{.data.api\\.key}",
        ),
        (
            "LoadBalancer on a cloud that gives a hostname",
            {"service": {"type": "LoadBalancer"}},
            "'hostname'",
        ),
        (
            "TLS only on one host",
            {
                "ingress": {
                    "enabled": True,
                    "hosts": [
                        {"host": "a.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]},
                        {"host": "b.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]},
                    ],
                    "tls": [{"secretName": "t", "hosts": ["a.example.com"]}],
                }
            },
            "http://b.example.com/",
        ),
    ],
)
def test_notes_say_how_to_reach_it(case: str, values: dict[str, Any], expected: str) -> None:
    notes = dry_run_install(values)["notes"]
    assert expected in notes, f"NOTES.txt for {case} lacks {expected!r}:\n{notes}"


@pytest.mark.parametrize(
    ("case", "values"),
    [
        (
            "NodePort refused by the NetworkPolicy",
            {"service": {"type": "NodePort"}, "networkPolicy": {"enabled": True}},
        ),
        (
            "Ingress without the controller in the NetworkPolicy",
            {**EXPOSED, "apiKey": {"existingSecret": "s"}, "networkPolicy": {"enabled": True}},
        ),
        (
            "ServiceMonitor without Prometheus in the NetworkPolicy",
            {"serviceMonitor": {"enabled": True, "forceEnable": True}, "networkPolicy": {"enabled": True}},
        ),
    ],
)
def test_notes_warn_when_the_network_policy_blocks_a_path(case: str, values: dict[str, Any]) -> None:
    notes = dry_run_install(values)["notes"]
    assert [line for line in warning_lines(notes) if "networkPolicy" in line], (
        f"NOTES.txt gives no networkPolicy WARNING for {case}:\n{notes}"
    )


def test_notes_do_not_offer_helm_test_without_the_hook() -> None:
    notes = dry_run_install({"tests": {"enabled": False}})["notes"]
    assert "helm test" not in notes, f"NOTES.txt suggests helm test with tests.enabled false:\n{notes}"


def test_helm_cli_renders_the_same(tmp_path: Any) -> None:
    helm = shutil.which("helm")
    if helm is None:
        pytest.skip("no `helm` binary on PATH: the in-process Helm SDK render is the only one here")
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(helpers.values_for(helpers.VALUE_SETS["prod"])))
    command = [
        helm,
        "template",
        helpers.RELEASE,
        str(helpers.CHART_DIR),
        "-f",
        str(values_file),
        "--namespace",
        helpers.NAMESPACE,
    ]
    rendered = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    expected = sorted(map(yaml.safe_dump, helpers.render_set("prod")))
    actual = sorted(yaml.safe_dump(o) for o in yaml.safe_load_all(rendered) if o)
    assert actual == expected, "helm template (CLI) and the in-process SDK render differ for prod"
