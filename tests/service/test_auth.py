"""API key: prediction routes need it when set; health, metrics and metadata never do."""

from __future__ import annotations

import logging

import pytest
from model_api import __version__

from tests.service.asgi_client import AsgiClient

KEY = "s3cret-key"
ROW_BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
INFER_BODY = (
    b'{"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}'
)
PROTECTED = [
    ("GET", "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2", b""),
    ("GET", "/api/v0/pi?ndigits=5", b""),
    ("POST", "/v1/models/iris:predict", ROW_BODY),
    ("POST", "/v2/models/iris/infer", INFER_BODY),
    ("POST", f"/v2/models/iris/versions/{__version__}/infer", INFER_BODY),
]
OPEN = [
    "/",
    "/v1/models",
    "/healthz",
    "/readyz",
    "/metrics",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/iris",
    "/v2/models/iris/ready",
    f"/v2/models/iris/versions/{__version__}",
    f"/v2/models/iris/versions/{__version__}/ready",
    "/v1/models/iris",
    "/openapi.json",
    "/docs",
]


@pytest.fixture
def keyed(make_app) -> AsgiClient:
    return AsgiClient(make_app(api_key=KEY))


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[p[1].split("?")[0] for p in PROTECTED])
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"X-API-Key": "wrong"}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {KEY}"}, 401),
        ({"X-API-Key": KEY}, 200),
        ({"Authorization": f"Bearer {KEY}"}, 200),
        ({"Authorization": f"bearer {KEY}"}, 200),
    ],
    ids=[
        "none",
        "wrong-x-api-key",
        "wrong-bearer",
        "basic-scheme",
        "x-api-key",
        "bearer",
        "bearer-lowercase",
    ],
)
def test_prediction_routes_require_the_key(
    keyed: AsgiClient, method: str, path: str, body: bytes, headers: dict, status: int
) -> None:
    result = keyed.request(method, path, body=body, headers=headers)

    assert result.status == status, f"{method} {path} with {list(headers)}: {result.body!r}"
    if status == 401:
        assert "API key" in result.json()["error"], "401 error names the API key"


@pytest.mark.parametrize("path", OPEN)
def test_health_metrics_and_metadata_never_need_the_key(keyed: AsgiClient, path: str) -> None:
    assert keyed.get(path).status == 200, path


def test_without_a_key_configured_prediction_routes_are_open(client: AsgiClient) -> None:
    method, path, body = PROTECTED[0]

    assert client.request(method, path, body=body).status == 200


def test_the_key_never_reaches_the_logs(keyed: AsgiClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        keyed.get(PROTECTED[0][1], headers={"X-API-Key": KEY})
        keyed.get(PROTECTED[0][1], headers={"X-API-Key": "wrong"})

    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert KEY not in logged and "wrong" not in logged
    assert KEY not in repr(keyed.app.state.settings), "settings repr shows the key"


def test_openapi_declares_security_only_when_a_key_is_set(keyed: AsgiClient, client: AsgiClient) -> None:
    with_key = keyed.get("/openapi.json").json()["paths"]["/v2/models/iris/infer"]["post"]
    without_key = client.get("/openapi.json").json()["paths"]["/v2/models/iris/infer"]["post"]

    assert ("security" in with_key, "401" in with_key["responses"]) == (True, True)
    assert ("security" in without_key, "401" in without_key["responses"]) == (False, False)
