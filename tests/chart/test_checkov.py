"""checkov's Kubernetes checks on the rendered releases (issue 9): nothing but the documented trade-offs.

The trade-offs live in one place, the chart README's "Security checks (checkov)" table (check ids, the kinds
they apply to, why each is accepted). Every finding must match a row, and every row must still fire somewhere,
so the table cannot rot. checkov runs from its own venv (`make checkov`: its dependency tree conflicts with
the dev pins); without it the module skips naming the target.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtest.chart import release
from tests.chart import helpers

pytestmark = pytest.mark.slow

README = helpers.CHART_DIR / "README.md"
TABLE_TITLE = "## Security checks (checkov)"
CHECK_ID = re.compile(r"CKV2?_K8S_\d+")
KIND = re.compile(r"\b[A-Z][A-Za-z]+\b")
NAMESPACE = "model-api"  # checkov flags `default` (CKV_K8S_21); the chart follows `helm install -n`

DIGEST = "sha256:" + "0" * 64
MONITOR = {"serviceMonitor": {"enabled": True, "forceEnable": True}}
MODEL_URI = {"model": {"uri": "s3://models/iris/v2/model.onnx", "sha256": "0" * 64, "version": "2.0.1"}}
BATCH = {
    "enabled": True,
    "input": "s3://data/iris.csv",
    "allowUnverifiedInput": True,
    "output": "s3://data/out/",
}
CANARY_FILE = helpers.VALUES_DIR / "values-canary.yaml"
INGRESS_PATHS = [{"path": "/", "pathType": "Prefix"}]
INGRESS = {"enabled": True, "hosts": [{"host": "m.example.com", "paths": INGRESS_PATHS}]}

# release id -> (values files, values on top). The shipped sets, then every optional object forced on
# through the tests' own values (CRD-backed objects included).
RELEASES: dict[str, tuple[tuple[Path, ...], Mapping[str, Any]]] = {
    **{set_id: (files, {}) for set_id, files in helpers.VALUE_SETS.items()},
    "canary": ((CANARY_FILE,), {}),
    # What the release pipeline publishes: values.yaml stamped with the image digest
    # (.github/scripts/release_chart.py stamp_values).
    "prod released": (helpers.VALUE_SETS["prod"], {"image": {"digest": DIGEST}}),
    "prod, Job, model.uri, ServiceMonitor": (
        helpers.VALUE_SETS["prod"],
        {**MONITOR, **MODEL_URI, "batch": BATCH},
    ),
    "prod, CronJob, StatefulSet, KEDA": (
        helpers.VALUE_SETS["prod"],
        {
            **MONITOR,
            **MODEL_URI,
            "batch": {**BATCH, "schedule": "0 2 * * *"},
            "autoscaling": {"engine": "keda"},
            "workload": {"kind": "StatefulSet"},
        },
    ),
    "prod, blue/green": (helpers.VALUE_SETS["prod"], {**MONITOR, "rollout": {"strategy": "blueGreen"}}),
    "canary, nginx Ingress router": (
        (CANARY_FILE,),
        {"rollout": {"engine": "helm", "canary": {"router": "ingressNginx"}}, "ingress": INGRESS},
    ),
}

# Issue 9's "Done when": the released prod install reports these and nothing else.
PROD_TRADE_OFFS = {
    ("CKV_K8S_11", "Deployment/model-api"),  # no CPU limit
    ("CKV_K8S_8", "Pod/model-api-test-connection"),  # no probes on the run-to-completion test pod
    ("CKV_K8S_9", "Pod/model-api-test-connection"),
}

Finding = tuple[str, str, str]  # (release id, check id, Kind/name)


def checkov_binary() -> str | None:
    """MODEL_API_CHECKOV, else the tool venv's checkov (make checkov), else one on PATH."""
    tool_venv = release.ROOT / ".venv-checkov" / "bin" / "checkov"
    candidates = [os.environ.get("MODEL_API_CHECKOV"), str(tool_venv)]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None) or shutil.which("checkov")


def directory_name(release_id: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", release_id.lower())


def documented() -> dict[tuple[str, str], str]:
    """(check id, kind) -> why it is accepted, from the README's table (the one list of trade-offs)."""
    text = README.read_text(encoding="utf-8")
    assert TABLE_TITLE in text, f"{README}: no {TABLE_TITLE!r} section"
    section = text.split(TABLE_TITLE, 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    accepted: dict[tuple[str, str], str] = {}
    for cells in rows[1:]:  # the header row first
        checks, kinds, reason = CHECK_ID.findall(cells[0]), KIND.findall(cells[1]), cells[-1].strip()
        for check in checks:
            for kind in kinds:
                accepted[(check, kind)] = reason
    return accepted


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """checkov's JSON report over every release, each rendered to <tmp>/<release id>/release.yaml."""
    checkov = checkov_binary()
    if checkov is None:
        pytest.skip("checkov is not installed: run `make checkov` (it needs PyPI)")
    root = tmp_path_factory.mktemp("checkov")
    for release_id, (files, values) in RELEASES.items():
        objects = helpers.render(values, files=files, namespace=NAMESPACE)
        directory = root / directory_name(release_id)
        directory.mkdir()
        manifest = yaml.safe_dump_all(objects, sort_keys=False)
        (directory / "release.yaml").write_text(manifest, encoding="utf-8")
    command = [checkov, "--framework", "kubernetes", "-d", str(root), "--compact"]
    command += ["--skip-download", "--output", "json"]  # offline: no guideline download from Prisma Cloud
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}"
    result = json.loads(done.stdout)
    result["directories"] = {directory_name(release_id): release_id for release_id in RELEASES}
    return result


def findings(report: Mapping[str, Any]) -> set[Finding]:
    """(release id, check id, Kind/name) of every failed check."""
    found = set()
    for failed in report["results"]["failed_checks"]:
        release_id = report["directories"][Path(failed["file_path"]).parent.name]
        kind, _namespace, name = failed["resource"].split(".", 2)
        found.add((release_id, failed["check_id"], f"{kind}/{name}"))
    return found


def test_checkov_scanned_every_release(report: dict[str, Any]) -> None:
    scanned = {Path(r["file_path"]).parent.name for r in report["results"]["passed_checks"]}
    expected = (set(report["directories"]), 0)
    actual = (scanned, report["summary"]["parsing_errors"])
    assert actual == expected, "(releases checkov scanned, parse errors)"


def test_every_finding_is_a_documented_trade_off(report: dict[str, Any]) -> None:
    accepted = documented()
    undocumented = sorted(f for f in findings(report) if (f[1], f[2].split("/")[0]) not in accepted)
    assert undocumented == [], (
        f"checkov findings not in {README.name}'s {TABLE_TITLE!r} table: fix the chart or document why:\n"
        + "\n".join(f"{release_id}: {check} {obj}" for release_id, check, obj in undocumented)
    )


def test_every_documented_trade_off_still_fires(report: dict[str, Any]) -> None:
    fired = {(check, obj.split("/")[0]) for _, check, obj in findings(report)}
    stale = sorted(set(documented()) - fired)
    assert stale == [], (
        f"{README.name}: documented checkov trade-offs that fire nowhere (remove them): {stale}"
    )


def test_released_prod_reports_only_the_issue_trade_offs(report: dict[str, Any]) -> None:
    actual = {(check, obj) for release_id, check, obj in findings(report) if release_id == "prod released"}
    assert actual == PROD_TRADE_OFFS, "checkov on values-prod.yaml with the release's image digest"


def test_every_trade_off_has_a_reason() -> None:
    unjustified = sorted(key for key, reason in documented().items() if len(reason.split()) < 5)
    assert (unjustified, bool(documented())) == ([], True), f"{README.name}: rows without a reason"
