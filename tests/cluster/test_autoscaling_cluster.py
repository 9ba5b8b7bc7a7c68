"""Autoscaling end to end on a real cluster (kind with metrics-server in CI): a step load through the
Service makes the HPA scale the release up, and once the load stops it scales back down.

The release is the dev values with autoscaling on and a 30 s scale-down window (loadtest.cluster.helm), in its
own namespace; the load runs as `python -m loadtest run --watch-hpa` in a subprocess (locust patches the
process that imports it), and the test reads the report it writes. Bounded: about 2 minutes of load,
2.5 minutes of watching, every step with a timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.chart import release
from loadtest.cluster import helm, proxy, watch
from tests.loadtest.loadtest_process import LoadRun, run_loadtest

pytestmark = pytest.mark.cluster

RELEASE = "model-api-autoscale"
NAMESPACE = "model-api-autoscale"
LOAD_SECONDS = 120
COOLDOWN_SECONDS = 150  # the 30 s scale-down window, the metrics pipeline's lag (~30-60 s) and a margin
RUN_TIMEOUT_S = LOAD_SECONDS + COOLDOWN_SECONDS + watch.METRICS_TIMEOUT_S + 120


@pytest.fixture(scope="module")
def installed() -> Iterator[list[release.Manifest]]:
    values = helm.cluster_values()
    objects = release.render(values, release=RELEASE, namespace=NAMESPACE)
    helm.install_or_upgrade(values, release_name=RELEASE, namespace=NAMESPACE)
    try:
        yield objects
    finally:
        helm.uninstall(RELEASE, NAMESPACE)


def run_watched_load(host: str, out: Path) -> LoadRun:
    return run_loadtest(
        host, out,
        "--shape", "step", "--step-users", "2", "--step-seconds", "30", "--steps", "4",
        "--duration", str(LOAD_SECONDS), "--user", "pi", "--user-rps", "2", "--pi-ndigits", "20000",
        "--watch-hpa", "--namespace", NAMESPACE, "--release", RELEASE, "--cooldown", str(COOLDOWN_SECONDS),
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip


def test_step_load_scales_up_then_down(installed: list[release.Manifest], tmp_path: Path) -> None:
    with proxy.service_url(installed, NAMESPACE) as host:
        finished, summary, timeline = run_watched_load(host, tmp_path)

    watched = [row for row in timeline if row.get("hpa_desired_replicas")]
    assert watched, f"the watcher recorded no HPA state; stderr:\n{finished.stderr[-3000:]}"
    desired = [int(row["hpa_desired_replicas"]) for row in watched]
    minimum = int(watched[0]["hpa_min_replicas"])
    verdicts = summary["verdicts"]
    assert max(desired) > minimum, f"no scale-up: desired replicas over the run {sorted(set(desired))}"
    assert verdicts["first_scale_up_s"] is not None, "summary.json verdicts.first_scale_up_s"
    assert desired[-1] < max(desired), f"no scale-down after the load: desired at the end {desired[-1]}"
    assert verdicts["scale_down_start_s"] is not None, "summary.json verdicts.scale_down_start_s"
    requests, failures = verdicts["requests"], verdicts["failures"]
    assert requests > 0 and failures <= 0.05 * requests, f"{failures} of {requests} requests failed"
