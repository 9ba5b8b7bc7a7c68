"""The kube context: is a cluster there, and the error every cluster step raises when it cannot go on."""

from __future__ import annotations


class ClusterError(RuntimeError):
    """The cluster path cannot continue; the message says what to fix."""


def check_reachable(context: str | None = None) -> str:
    """The API server's version; ClusterError naming the context when none answers."""
    from kubernetes import client, config

    try:
        config.load_kube_config(context=context)
        version = client.VersionApi().get_code(_request_timeout=5)
    except Exception as exc:  # any failure means "no cluster here"; the reason goes to the user verbatim
        raise ClusterError(
            f"no reachable Kubernetes cluster in kubeconfig context {context or '(current)'} "
            f"({type(exc).__name__}: {exc}). Start one (e.g. `kind create cluster`) "
            "or run `make demo` without CLUSTER=1"
        ) from None
    return str(version.git_version)
