"""Not ready (artifact missing or shutting down): liveness 200, readiness 503, predictions 503."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.service.asgi_client import AsgiClient
from tests.service.test_auth import PROTECTED


@pytest.fixture
def unloaded(make_app, tmp_path: Path) -> AsgiClient:
    return AsgiClient(make_app(model_path=tmp_path / "missing.onnx"))


@pytest.mark.parametrize(
    ("path", "status", "fields"),
    [
        ("/healthz", 200, {"status": "alive"}),
        ("/v2/health/live", 200, {"live": True}),
        ("/readyz", 503, {}),
        ("/v2/health/ready", 503, {"ready": False}),
        ("/v2/models/iris/ready", 503, {"name": "iris", "ready": False}),
        ("/v1/models/iris", 503, {"name": "iris", "ready": False}),
        ("/v2/models/iris", 503, {}),
    ],
)
def test_probes_without_a_model(unloaded: AsgiClient, path: str, status: int, fields: dict) -> None:
    result = unloaded.get(path)

    body = result.json()
    assert result.status == status, f"{path}: {body}"
    assert {k: body[k] for k in fields} == fields, f"{path} body"
    if status == 503:
        assert "missing.onnx" not in body["error"] and "file not found" in body["error"], f"{path} error"


@pytest.mark.parametrize(
    ("method", "path", "body"), PROTECTED[:1] + PROTECTED[2:], ids=["classify", "v1", "v2", "v2-versioned"]
)
def test_predictions_without_a_model_are_503(
    unloaded: AsgiClient, method: str, path: str, body: bytes
) -> None:
    result = unloaded.request(method, path, body=body)

    assert (result.status, "not loaded" in result.json()["error"]) == (503, True), path


def test_pi_does_not_need_the_model(unloaded: AsgiClient) -> None:
    assert unloaded.get("/api/v0/pi?ndigits=3").json() == {"ndigits": 3, "pi": "3.141"}


def test_shutting_down_turns_readiness_503_but_keeps_serving(client: AsgiClient) -> None:
    client.app.state.begin_shutdown()

    readiness = client.get("/readyz")
    classify = client.get(PROTECTED[0][1])

    assert (readiness.status, readiness.json()) == (503, {"error": "not ready: shutting down"})
    assert classify.status == 200, "requests are still served while draining"
