"""`model-api check --url URL`: the smoke test the chart's `helm test` hook runs inside the service image.

Standard library only, so it adds nothing to the image and starts fast.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable

from model_api.settings import SettingsError, api_key_from_env

CLASSIFY_PATH = "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2"
EXPECTED_SPECIES = {"species": "Iris setosa"}


def run_checks(base_url: str, *, timeout: float = 5.0, out: Callable[[str], None] = print) -> int:
    """0 when the service is ready and classifies the reference flower correctly, else 1."""
    base_url = base_url.rstrip("/")
    headers = {}
    try:
        api_key = api_key_from_env()  # as the server reads it: MODEL_API_API_KEY_FILE or MODEL_API_API_KEY
    except SettingsError as error:
        out(f"FAIL settings: {error}")
        return 1
    if api_key:
        headers["X-API-Key"] = api_key
    checks = (
        ("readiness", "/readyz", lambda status, body: status == 200),
        ("classify", CLASSIFY_PATH, lambda status, body: status == 200 and _json(body) == EXPECTED_SPECIES),
    )
    for name, path, passed in checks:
        status, body = _get(base_url + path, headers, timeout)
        ok = passed(status, body)
        out(f"{'PASS' if ok else 'FAIL'} {name}: GET {path} -> {status} {body[:200]!r}")
        if not ok:
            return 1
    return 0


def _get(url: str, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, f"unreachable: {getattr(error, 'reason', error)}"


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None
