"""The canary rehearsal end to end: `python -m loadtest canary --values` renders the chart with this test's
own canary values (never the shipped files), starts real slots, a real nginx and a real Prometheus, and loads
them with locust.

Short runs (about 35 s of load in all) prove the split, the header rule and both verdicts; the long one
(`slow`) proves the replica-count router over a longer run. Locust gevent-patches the process that imports
it, so every rehearsal is a child process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadtest.chart import release
from tests.loadtest.canary_release import canary_release, write_manifest

ROOT = Path(__file__).resolve().parents[2]
# The chart's default analysis thresholds (1 % errors, p99 0.5 s): a good candidate passes them even on a busy
# shared machine; the bad ones (30 % errors, 1 s per answer) fail them by far.
TIMEOUT_S = 240  # process start-up, load and analysis of one rehearsal on a loaded 2-core machine
CONFIDENCE = "0.999"  # the share test may fail by chance 1 run in 1000, not 1 in 20
CANARY_VALUES: dict[str, Any] = {
    "rollout": {
        "strategy": "canary",
        "active": "blue",
        "engine": "argo",
        "canary": {"weight": 20, "header": "X-Canary", "router": "gatewayAPI"},
        "slots": {"blue": {"model": {"version": "1.0.0"}}, "green": {"model": {"version": "1.1.0"}}},
    },
    "httpRoute": {"parentRefs": [{"name": "gateway"}]},
    "serviceMonitor": {"enabled": True, "forceEnable": True},
}
INGRESS_NGINX = {
    "rollout": {"canary": {"router": "ingressNginx"}},
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "hosts": [{"host": "model-api.local", "paths": [{"path": "/", "pathType": "Prefix"}]}],
    },
}
REPLICAS = {
    "rollout": {
        "canary": {"router": "replicas", "weight": 25, "header": ""},
        "slots": {"blue": {"replicaCount": 3}, "green": {"replicaCount": 1}},
    }
}


@pytest.fixture(autouse=True, scope="module")
def _servers_installed() -> None:
    missing = [b for b in ("/usr/sbin/nginx", "/usr/bin/prometheus") if shutil.which(b) is None]
    if missing:
        pytest.fail(f"{missing} not installed: apt-get install nginx-light prometheus (bash .ci/run does)")


def rehearse(tmp_path: Path, values: dict[str, Any], *options: str) -> tuple[int, str, dict[str, Any]]:
    """Run the rehearsal of the chart rendered with `values`; (exit status, stderr, summary.json)."""
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    command = [sys.executable, "-m", "loadtest", "canary", "--values", str(values_file), "--out", str(out)]
    finished = subprocess.run(
        [*command, "--confidence", CONFIDENCE, *options],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    reports = sorted(out.iterdir()) if out.exists() else []
    assert len(reports) == 1, f"no report (exit {finished.returncode}):\n{finished.stderr[-4000:]}"
    for name in ("canary.md", "canary.png", "canary.csv", "nginx.conf", "prometheus.yml"):
        assert (reports[0] / name).is_file(), f"report file {name} missing"
    return finished.returncode, finished.stderr, json.loads((reports[0] / "summary.json").read_text())


def candidate_share(summary: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in summary["shares"] if s["slot"] == summary["candidate"]["slot"])


def test_weight_20_is_observed_the_header_rule_holds_and_a_good_candidate_is_promoted(tmp_path: Path) -> None:
    status, stderr, summary = rehearse(tmp_path, CANARY_VALUES, "--duration", "15")
    assert summary["problems"] == [], "contract problems (version header, unknown upstreams)"
    share = candidate_share(summary)
    assert share["expected"] == 0.2
    assert share["low"] <= 0.2 <= share["high"], f"candidate share interval vs weight 20: {share}"
    assert share["total"] >= 200, "weighted requests: too few for the interval to mean anything"
    header = summary["header"]
    assert header["answers"] > 0 and header["to_candidate"] == header["answers"], f"header rule: {header}"
    assert summary["verdict"] == "promote", f"analysis: {summary['measurements']}"
    scraped = {
        (s["labels"]["model_api_slot"], s["labels"]["model_api_model_version"]) for s in summary["scraped"]
    }
    assert scraped == {("blue", "1.0.0"), ("green", "1.1.0")}, "Prometheus' target labels per slot"
    assert status == 0, stderr[-3000:]


def test_a_failing_candidate_is_aborted(tmp_path: Path) -> None:
    status, stderr, summary = rehearse(
        tmp_path, CANARY_VALUES, "--duration", "10", "--candidate-error-rate", "0.3",
        "--expect", "abort",
    )  # fmt: skip
    assert summary["metric_phases"] == {"error-ratio": "Failed", "p99-latency": "Successful"}
    assert summary["verdict"] == "abort"
    assert status == 0, stderr[-3000:]


def test_a_slow_candidate_behind_ingress_nginx_is_aborted(tmp_path: Path) -> None:
    status, stderr, summary = rehearse(
        tmp_path, release.merge_values(CANARY_VALUES, INGRESS_NGINX), "--duration", "10",
        "--candidate-latency-ms", "1000", "--expect", "abort",
    )  # fmt: skip
    assert summary["router"]["kind"] == "ingressNginx"
    assert summary["metric_phases"] == {"error-ratio": "Successful", "p99-latency": "Failed"}
    header = summary["header"]
    assert header["answers"] > 0 and header["to_candidate"] == header["answers"], f"header rule: {header}"
    assert status == 0, stderr[-3000:]


@pytest.mark.slow
def test_replica_router_splits_by_replicas_over_a_longer_run(tmp_path: Path) -> None:
    status, stderr, summary = rehearse(
        tmp_path, release.merge_values(CANARY_VALUES, REPLICAS), "--duration", "30"
    )
    share = candidate_share(summary)
    assert share["expected"] == 0.25
    assert share["low"] <= 0.25 <= share["high"], f"candidate share interval vs 1 of 4 replicas: {share}"
    assert summary["header"]["rule"] is None
    assert summary["verdict"] == "promote", f"analysis: {summary['measurements']}"
    assert status == 0, stderr[-3000:]


def test_a_manifest_without_two_slots_is_refused_naming_the_value(tmp_path: Path) -> None:
    objects = [o for o in canary_release() if o["metadata"]["name"] != "model-api-green"]
    manifest = write_manifest(tmp_path / "release.yaml", objects)
    finished = subprocess.run(
        [sys.executable, "-m", "loadtest", "canary", "--manifest", str(manifest), "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert finished.returncode == 2
    assert "rollout.strategy=canary" in finished.stderr
