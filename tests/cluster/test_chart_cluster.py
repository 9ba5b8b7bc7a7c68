"""The chart on a real cluster (marker `cluster`; tests/conftest.py skips these without a reachable
kubeconfig context). In a fresh namespace that enforces the restricted Pod Security Standard: install
values-dev.yaml and wait for the rollout, run the helm test hook, server-side dry-run every prod object,
upgrade with a changed ConfigMap and see the pods roll, uninstall. Every wait is bounded; the namespace
is deleted whatever happens.

The service image must be in the cluster (CI: `docker build` + `kind load docker-image`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import helm_python
import pytest

from loadtest.chart import release
from loadtest.probe import wait_until
from tests.chart import helpers

pytestmark = pytest.mark.cluster

RELEASE = "model-api"
INSTALL_TIMEOUT_S = 300
POLL_S = 2.0


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` every POLL_S until truthy (loadtest.probe); TimeoutError naming `what`."""
    return wait_until(condition, timeout=timeout, what=what, interval=POLL_S)


class ClusterRelease:
    """One namespace and one Helm release in it, with the kubernetes clients to watch them."""

    def __init__(self) -> None:
        from kubernetes import client, config, dynamic

        config.load_kube_config()
        self.core = client.CoreV1Api()
        self.apps = client.AppsV1Api()
        self.dynamic = dynamic.DynamicClient(client.ApiClient())
        self.namespace = f"model-api-test-{uuid.uuid4().hex[:8]}"
        self.helm = helm_python.Config(namespace=self.namespace)

    def create_namespace(self) -> None:
        labels = {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        }
        self.core.create_namespace({"metadata": {"name": self.namespace, "labels": labels}})

    def delete_namespace(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.delete_namespace(self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
        self.helm.close()

    def values(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return helpers.values_for(helpers.VALUE_SETS["dev"], overrides)

    def deployment(self) -> Any:
        return self.apps.read_namespaced_deployment(helpers.FULLNAME, self.namespace)

    def rolled_out(self) -> bool:
        """`kubectl rollout status`: newest generation observed, every replica updated, ready, available."""
        d = self.deployment()
        wanted = d.spec.replicas or 0
        status = d.status
        return bool(
            (status.observed_generation or 0) >= d.metadata.generation
            and (status.updated_replicas or 0) == wanted
            and (status.ready_replicas or 0) == wanted
            and (status.available_replicas or 0) == wanted
            and (status.replicas or 0) == wanted  # old ReplicaSet's pods gone
        )

    def pod_template_hashes(self) -> set[str]:
        selector = ",".join(f"{k}={v}" for k, v in self.deployment().spec.selector.match_labels.items())
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        return {p.metadata.labels.get("pod-template-hash") for p in pods if p.status.phase == "Running"}


@contextlib.contextmanager
def installed(target: ClusterRelease, overrides: dict[str, Any] | None = None) -> Iterator[ClusterRelease]:
    """The release installed in the target's own namespace for the block, uninstalled and deleted after."""
    target.create_namespace()
    try:
        target.helm.install(
            str(helpers.CHART_DIR),
            RELEASE,
            target.values(overrides),
            namespace=target.namespace,
            wait="watcher",
            timeout=INSTALL_TIMEOUT_S,
        )
        yield target
    finally:
        try:
            target.helm.uninstall(RELEASE, ignore_not_found=True, timeout=120)
        finally:
            target.delete_namespace()


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterRelease]:
    with installed(ClusterRelease()) as target:
        yield target


def test_dev_install_rolls_out(cluster: ClusterRelease) -> None:
    wait_for(
        cluster.rolled_out, INSTALL_TIMEOUT_S, f"Deployment/{helpers.FULLNAME} rollout in {cluster.namespace}"
    )
    status = cluster.helm.status(RELEASE)
    assert status["status"] == "deployed", f"helm status {RELEASE}: {status['status']}"


def test_helm_test_hook_passes(cluster: ClusterRelease) -> None:
    try:
        cluster.helm.test(RELEASE, timeout=180, logs=True)
    except helm_python.HelmReleaseError as error:
        pytest.fail(f"helm test {RELEASE} in {cluster.namespace} failed: {error}")


def test_prod_objects_pass_a_server_side_dry_run(cluster: ClusterRelease) -> None:
    """Admission, defaulting and the restricted Pod Security Standard, as the API server applies them."""
    objects = release.render(helpers.values_for(helpers.VALUE_SETS["prod"]), namespace=cluster.namespace)
    refused, checked = [], []
    for obj in objects:
        try:
            api = cluster.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except Exception:  # the cluster does not serve this API (e.g. no Prometheus Operator CRDs)
            continue
        try:
            api.create(body=obj, namespace=cluster.namespace, dry_run="All")
            checked.append(helpers.label(obj))
        except Exception as error:
            refused.append(f"{helpers.label(obj)}: {getattr(error, 'body', error)}")
    assert refused == [], "the API server refuses prod objects (dry run):\n" + "\n".join(refused)
    assert f"Deployment/{helpers.FULLNAME}" in checked


def test_config_change_rolls_the_pods(cluster: ClusterRelease) -> None:
    wait_for(cluster.rolled_out, INSTALL_TIMEOUT_S, "the initial rollout")
    before = cluster.pod_template_hashes()
    cluster.helm.upgrade(
        str(helpers.CHART_DIR),
        RELEASE,
        cluster.values({"config": {"logLevel": "warning"}}),
        namespace=cluster.namespace,
        wait="watcher",
        timeout=INSTALL_TIMEOUT_S,
    )
    wait_for(cluster.rolled_out, INSTALL_TIMEOUT_S, "the rollout after the ConfigMap change")

    def only_new_pods() -> set[str] | None:
        hashes = cluster.pod_template_hashes()
        return hashes if hashes and not hashes & before else None

    after = wait_for(only_new_pods, INSTALL_TIMEOUT_S, "only pods of the new template running")
    config = cluster.core.read_namespaced_config_map(helpers.FULLNAME, cluster.namespace)
    assert (config.data["MODEL_API_LOG_LEVEL"], bool(after & before)) == ("warning", False), (
        f"pod-template-hash before {before}, after {after}: a ConfigMap change must roll the pods"
    )


def test_uninstall_removes_the_release(cluster: ClusterRelease) -> None:
    cluster.helm.uninstall(RELEASE, wait="watcher", timeout=120)
    remaining = cluster.apps.list_namespaced_deployment(cluster.namespace).items
    assert [d.metadata.name for d in remaining] == []
