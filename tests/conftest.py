"""Suite-wide: `cluster`-marked tests run only when a kubeconfig context reaches a cluster."""

from __future__ import annotations

import functools
import os

import pytest

# Importing locust gevent-patches the process, which breaks once pytest has imported ssl;
# load tests run locust in subprocesses instead.
os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")

# Real S3 and HTTP servers on loopback (`s3_server`, `flaky_http`), for the service, chart and batch tests.
pytest_plugins = ["tests.servers.fixtures"]


@functools.cache
def cluster_unreachable_reason() -> str | None:
    """None when the current kubeconfig context answers; otherwise why the cluster tests skip."""
    try:
        from kubernetes import client, config

        config.load_kube_config()
        client.VersionApi().get_code(_request_timeout=5)
    except Exception as exc:  # any failure to reach a cluster is a reason to skip, reported verbatim
        return f"no reachable Kubernetes cluster in the kubeconfig context ({type(exc).__name__}: {exc})"
    return None


@pytest.hookimpl(trylast=True)  # after `-m` has deselected: `-m "not cluster"` never probes the cluster
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cluster_items = [item for item in items if item.get_closest_marker("cluster")]
    if not cluster_items:
        return
    reason = cluster_unreachable_reason()
    if reason:
        for item in cluster_items:
            item.add_marker(pytest.mark.skip(reason=reason))
