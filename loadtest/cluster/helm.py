"""Install, upgrade and uninstall the release on the current kube context (or `--context`).

Helm: the `helm` CLI when it is on PATH, else Helm's own Go SDK through helm-python-sdk. The release the
cluster demo and the cluster tests install is the dev values with autoscaling on and a short scale-down
window (`cluster_values()`), so a scale-down shows within minutes.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from typing import Any

import yaml

from loadtest.chart import release
from loadtest.cluster.context import ClusterError

# The dev release with autoscaling on and a short scale-down window, so a scale-down shows within minutes.
CLUSTER_VALUES = ("values-dev.yaml",)
CLUSTER_OVERRIDES: dict[str, Any] = {
    "autoscaling": {
        "enabled": True,
        "minReplicas": 1,
        "maxReplicas": 4,
        "targetCPUUtilizationPercentage": 50,
        "behavior": {
            "scaleDown": {
                "stabilizationWindowSeconds": 30,
                "selectPolicy": "Max",
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
            }
        },
    }
}
DEFAULT_NAMESPACE = "model-api-load"
INSTALL_TIMEOUT_S = 300


def cluster_values() -> dict[str, Any]:
    return release.load_values(CLUSTER_VALUES, CLUSTER_OVERRIDES)


def install_or_upgrade(
    values: Mapping[str, Any], *, release_name: str, namespace: str, context: str | None = None
) -> str:
    """`helm upgrade --install` with the CLI when present, else the Helm SDK; returns which one was used."""
    helm = shutil.which("helm")
    if helm:
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="model-api-values-") as values_file:
            yaml.safe_dump(dict(values), values_file)
            values_file.flush()
            command = [
                helm, "upgrade", "--install", release_name, str(release.CHART_DIR),
                "--namespace", namespace, "--create-namespace", "-f", values_file.name,
                "--wait", "--timeout", f"{INSTALL_TIMEOUT_S}s",
                *(["--kube-context", context] if context else []),
            ]  # fmt: skip
            finished = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S + 60)
        if finished.returncode != 0:
            raise ClusterError(f"helm upgrade --install {release_name} failed:\n{finished.stderr.strip()}")
        return f"helm CLI ({helm})"
    return _install_with_sdk(values, release_name=release_name, namespace=namespace, context=context)


def _install_with_sdk(
    values: Mapping[str, Any], *, release_name: str, namespace: str, context: str | None
) -> str:
    import helm_python

    config = helm_python.Config(namespace=namespace, kube_context=context)
    try:
        try:
            config.upgrade(
                str(release.CHART_DIR), release_name, dict(values), namespace=namespace, wait="watcher",
                timeout=INSTALL_TIMEOUT_S,
            )  # fmt: skip
        except helm_python.HelmNotFoundError:  # first install
            config.install(
                str(release.CHART_DIR), release_name, dict(values), namespace=namespace, wait="watcher",
                timeout=INSTALL_TIMEOUT_S, create_namespace=True,
            )  # fmt: skip
    except helm_python.HelmError as exc:
        raise ClusterError(f"Helm SDK could not install or upgrade {release_name}: {exc}") from None
    finally:
        config.close()
    return f"Helm SDK {helm_python.helm_sdk_version()} (helm-python-sdk; no helm CLI on PATH)"


def uninstall(release_name: str, namespace: str, context: str | None = None) -> None:
    """Remove the release (no error when it is already gone)."""
    helm = shutil.which("helm")
    if helm:
        command = [helm, "uninstall", release_name, "--namespace", namespace, "--ignore-not-found", "--wait"]
        finished = subprocess.run(
            [*command, *(["--kube-context", context] if context else [])],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
        if finished.returncode != 0:
            raise ClusterError(f"helm uninstall {release_name} failed:\n{finished.stderr.strip()}")
        return
    import helm_python

    config = helm_python.Config(namespace=namespace, kube_context=context)
    try:
        config.uninstall(release_name, ignore_not_found=True, wait="watcher", timeout=INSTALL_TIMEOUT_S)
    except helm_python.HelmError as exc:
        raise ClusterError(f"Helm SDK could not uninstall {release_name}: {exc}") from None
    finally:
        config.close()
