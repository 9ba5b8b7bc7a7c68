"""Before any load: is the target answering?

`check_target(host)` polls the target's readiness path for a few seconds (a service that is starting gets
that long) and fails with `TargetUnavailable` naming the host and the last error, so a load run against a
dead or wrong host stops at once instead of counting failures for its whole duration. (The V2 users read
the served model's name and signature themselves when they start: users.model_plan.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from loadtest.probe import WaitTimeout, wait_for_http

READY_PATH = "/readyz"
CHECK_SECONDS = 5.0  # retries for a target still starting; then the run fails naming the error


class TargetUnavailable(RuntimeError):
    """The target did not answer its readiness path; the message names the host and the error."""


@dataclass(frozen=True)
class Target:
    host: str
    ready_seconds: float


def url_of(host: str, path: str) -> str:
    return host.rstrip("/") + path


def check_target(
    host: str,
    *,
    ready_path: str = READY_PATH,
    timeout: float = CHECK_SECONDS,
    headers: Mapping[str, str] | None = None,
) -> Target:
    """The target once `ready_path` answers 200 (polled for `timeout` s)."""
    try:
        took = wait_for_http(url_of(host, ready_path), timeout=timeout, interval=0.25, headers=headers)
    except WaitTimeout as exc:
        raise TargetUnavailable(
            f"{host} is not ready: GET {ready_path} did not answer 200 within {timeout:g} s "
            f"(last: {exc.last})"
        ) from None
    return Target(host, took)
