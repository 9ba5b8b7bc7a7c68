"""Before any load: is the target answering, and which model does it serve?

`check_target(host)` polls the target's readiness path for a few seconds (a service that is starting gets
that long) and fails with `TargetUnavailable` naming the host and the last error, so a load run against a
dead or wrong host stops at once instead of counting failures for its whole duration. It then reads the
served model's name from `GET /v1/models` (the service's `config.modelName`), so the users request the
model the target actually serves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from loadtest.probe import WaitTimeout, describe_error, http_get, wait_for_http

READY_PATH = "/readyz"
CHECK_SECONDS = 5.0  # retries for a target still starting; then the run fails naming the error
MODELS_PATH = "/v1/models"


class TargetUnavailable(RuntimeError):
    """The target did not answer its readiness path; the message names the host and the error."""


@dataclass(frozen=True)
class Target:
    host: str
    model_name: str | None  # None: the target lists no model (not a model-api service?)
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
    """The target once `ready_path` answers 200 (polled for `timeout` s), with the model it serves."""
    try:
        took = wait_for_http(url_of(host, ready_path), timeout=timeout, interval=0.25, headers=headers)
    except WaitTimeout as exc:
        raise TargetUnavailable(
            f"{host} is not ready: GET {ready_path} did not answer 200 within {timeout:g} s "
            f"(last: {exc.last})"
        ) from None
    return Target(host, served_model_name(host, headers=headers), took)


def served_model_name(host: str, headers: Mapping[str, str] | None = None) -> str | None:
    """The first model `GET /v1/models` lists ({"models": ["iris"]}); None when the target lists none."""
    try:
        status, body = http_get(url_of(host, MODELS_PATH), timeout=5.0, headers=headers)
    except OSError as exc:
        raise TargetUnavailable(f"{host}: GET {MODELS_PATH} failed: {describe_error(exc)}") from None
    try:
        models = json.loads(body).get("models") if status == 200 else None
    except (ValueError, AttributeError):
        models = None
    return str(models[0]) if isinstance(models, list) and models else None
