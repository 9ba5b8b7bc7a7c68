"""`model-api check --url URL`: the smoke test the chart's `helm test` hook runs inside the service image.

Standard library only, so it adds nothing to the image and starts fast.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from model_api.settings import SettingsError, api_key_from_env

CLASSIFY_PATH = "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2"
EXPECTED_SPECIES = {"species": "Iris setosa"}
_ZERO = {"BOOL": False, "BYTES": ""}  # one row's element per datatype; numbers are 0


def run_checks(base_url: str, *, timeout: float = 5.0, out: Callable[[str], None] = print) -> int:
    """0 when the service is ready and answers a V2 inference shaped by its own model metadata (and, for
    the iris model, classifies the reference flower correctly), else 1."""
    base_url = base_url.rstrip("/")
    headers = {}
    try:
        api_key = api_key_from_env()  # as the server reads it: MODEL_API_API_KEY_FILE or MODEL_API_API_KEY
    except SettingsError as error:
        out(f"FAIL settings: {error}")
        return 1
    if api_key:
        headers["X-API-Key"] = api_key

    def check(
        name: str, method: str, path: str, passed: Callable[[int, str], bool], body: bytes = b""
    ) -> str:
        status, text = _request(method, base_url + path, headers, timeout, body)
        if not passed(status, text):
            out(f"FAIL {name}: {method} {path} -> {status} {text[:200]!r}")
            raise _Failed
        out(f"PASS {name}: {method} {path} -> {status} {text[:200]!r}")
        return text

    try:
        check("readiness", "GET", "/readyz", lambda status, text: status == 200)
        name = (_json(check("model list", "GET", "/v1/models", _ok)) or {}).get("models", ["?"])[0]
        metadata = _json(check("metadata", "GET", f"/v2/models/{name}", _ok)) or {}
        outputs = sorted(o.get("name") for o in metadata.get("outputs", []))
        check(
            "infer",
            "POST",
            f"/v2/models/{name}/infer",
            lambda status, text: status == 200 and _output_names(text) == outputs,
            json.dumps({"inputs": [_one_row(spec) for spec in metadata.get("inputs", [])]}).encode(),
        )
        if EXPECTED_SPECIES["species"] in metadata.get("parameters", {}).get("class_names", []):
            check(
                "classify",
                "GET",
                CLASSIFY_PATH,
                lambda status, text: status == 200 and _json(text) == EXPECTED_SPECIES,
            )
    except _Failed:
        return 1
    return 0


class _Failed(Exception):
    pass


def _ok(status: int, text: str) -> bool:
    return status == 200 and isinstance(_json(text), dict)


def _output_names(text: str) -> list[str] | None:
    body = _json(text)
    try:
        return sorted(output["name"] for output in body["outputs"])
    except (TypeError, KeyError):
        return None


def _one_row(spec: dict) -> dict:
    """A tensor of one row (dynamic dimensions as 1) of zeros for an input of the model metadata."""
    shape = [1 if dim == -1 else dim for dim in spec["shape"]]
    count = 1
    for dim in shape:
        count *= dim
    value = _ZERO.get(spec["datatype"], 0)
    return {"name": spec["name"], "shape": shape, "datatype": spec["datatype"], "data": [value] * count}


def _request(method: str, url: str, headers: dict[str, str], timeout: float, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(
        url,
        data=body or None,
        method=method,
        headers={**headers, "Content-Type": "application/json"} if body else headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, f"unreachable: {getattr(error, 'reason', error)}"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
