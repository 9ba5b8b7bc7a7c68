"""The canary on a real cluster (marker `cluster`; skipped without a reachable kubeconfig context, run by the
GitHub workflow on kind). What the offline layers cannot prove: kube-proxy really splits a replicas-router
canary by replica counts, a blue/green main Service really answers from the active slot only, and a flip
moves the traffic without restarting a pod. Traffic is counted from inside the cluster by the
`X-Model-Version` header of each answer.

The service image must be in the cluster (CI: `docker build` + `kind load docker-image`).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from loadtest.chart.release import merge_values
from tests.chart import helpers
from tests.cluster.test_chart_cluster import INSTALL_TIMEOUT_S, RELEASE, ClusterRelease, installed, wait_for

pytestmark = pytest.mark.cluster

REQUESTS = 400
TWO_MODELS = {"blue": {"model": {"version": "v1"}}, "green": {"model": {"version": "v2"}}}
CANARY_25 = {
    "rollout": {
        "strategy": "canary",
        "canary": {"router": "replicas", "weight": 25},
        "slots": merge_values(TWO_MODELS, {"blue": {"replicaCount": 3}, "green": {"replicaCount": 1}}),
    }
}
# A new connection per request (urllib), so kube-proxy picks an endpoint for each one.
COUNT_VERSIONS = """
import collections, json, sys, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
seen = collections.Counter()
for _ in range(n):
    with urllib.request.urlopen(url, timeout=10) as response:
        seen[response.headers.get("X-Model-Version", "none")] += 1
print(json.dumps(seen))
"""


def blue_green(active: str) -> dict[str, Any]:
    return {"rollout": {"strategy": "blueGreen", "active": active, "slots": TWO_MODELS}}


class CanaryCluster(ClusterRelease):
    def upgrade(self, overrides: dict[str, Any]) -> None:
        self.helm.upgrade(
            str(helpers.CHART_DIR),
            RELEASE,
            self.values(overrides),
            namespace=self.namespace,
            wait="watcher",
            timeout=INSTALL_TIMEOUT_S,
        )

    def versions_seen(self, service: str, requests: int = REQUESTS) -> dict[str, int]:
        """Model version → answers, for `requests` requests to `service` from a pod in the namespace."""
        name = f"count-{uuid.uuid4().hex[:6]}"
        image = helpers.workload(helpers.render(helpers.values_for(helpers.VALUE_SETS["dev"])))
        image_ref = image["spec"]["template"]["spec"]["containers"][0]["image"]
        url = f"http://{service}/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2"
        restricted = {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        self.core.create_namespaced_pod(
            self.namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "count",
                            "image": image_ref,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-c", COUNT_VERSIONS, url, str(requests)],
                            "securityContext": restricted,
                        }
                    ],
                },
            },
        )

        def finished() -> str | None:
            phase = self.core.read_namespaced_pod(name, self.namespace).status.phase
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_for(finished, INSTALL_TIMEOUT_S, f"Pod/{name} counting versions behind {service}")
        log = self.core.read_namespaced_pod_log(name, self.namespace)
        assert phase == "Succeeded", f"Pod/{name}: {phase}: {log}"
        return json.loads(log.strip().splitlines()[-1])

    def pod_uids(self) -> set[str]:
        selector = f"app.kubernetes.io/instance={RELEASE}"
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return {
            p.metadata.uid
            for p in pods
            if p.status.phase == "Running"
            and p.metadata.deletion_timestamp is None  # a scaled-down pod still terminating
            and "model-api/slot" in (p.metadata.labels or {})
        }


@pytest.fixture(scope="module")
def cluster() -> Iterator[CanaryCluster]:
    with installed(CanaryCluster(), CANARY_25) as target:
        yield target


def test_replicas_canary_splits_by_replica_count(cluster: CanaryCluster) -> None:
    seen = cluster.versions_seen(helpers.FULLNAME)
    share, n = 0.25, sum(seen.values())
    margin = 3.29 * math.sqrt(share * (1 - share) / n)  # two-sided 99.9 % normal interval
    observed = seen.get("v2", 0) / n
    assert abs(observed - share) <= margin, (
        f"candidate v2 answered {observed:.3f} of {n}, expected {share} ± {margin:.3f}: {seen}"
    )


def test_blue_green_serves_the_active_slot_and_flips_without_restarts(cluster: CanaryCluster) -> None:
    cluster.upgrade(blue_green("blue"))
    wait_for(lambda: len(cluster.pod_uids()) == 2, INSTALL_TIMEOUT_S, "one running pod per slot")
    pods = cluster.pod_uids()
    main, preview = (
        cluster.versions_seen(helpers.FULLNAME, 50),
        cluster.versions_seen(f"{helpers.FULLNAME}-preview", 50),
    )
    cluster.upgrade(blue_green("green"))
    time.sleep(5)  # endpoints follow the Service selector within a few seconds
    flipped = cluster.versions_seen(helpers.FULLNAME, 50)
    assert (main, preview, flipped, cluster.pod_uids()) == ({"v1": 50}, {"v2": 50}, {"v2": 50}, pods)
