"""Over real sockets: body limits on the wire, keep-alive reuse after an error, and a lean serve path."""

from __future__ import annotations

import http.client
import subprocess
import sys

import orjson
import pytest

from tests.service.server_process import ServerProcess

pytestmark = pytest.mark.slow
INFER = "/v2/models/iris/infer"


@pytest.fixture
def connection(live_server: ServerProcess) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    yield conn
    conn.close()


def answer(conn: http.client.HTTPConnection) -> tuple[int, dict]:
    response = conn.getresponse()
    return response.status, orjson.loads(response.read())


def test_declared_oversized_body_is_413(connection: http.client.HTTPConnection) -> None:
    connection.request("POST", INFER, body=b" " * 1_048_577)

    assert answer(connection) == (
        413,
        {"error": "request body of 1048577 bytes exceeds MAX_BODY_BYTES=1048576"},
    )


def test_chunked_oversized_body_is_413(connection: http.client.HTTPConnection) -> None:
    chunks = (b" " * 65536 for _ in range(20))

    connection.request(
        "POST", INFER, body=chunks, encode_chunked=True, headers={"Transfer-Encoding": "chunked"}
    )

    assert answer(connection) == (413, {"error": "request body exceeds MAX_BODY_BYTES=1048576"})


def test_connection_keeps_working_after_a_client_error(connection: http.client.HTTPConnection) -> None:
    connection.request("POST", INFER, body=b"{not json")
    first = answer(connection)
    connection.request(
        "GET", "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.2", headers={"X-Request-ID": "r-1"}
    )
    response = connection.getresponse()

    assert first[0] == 400 and "malformed JSON" in first[1]["error"]
    assert (response.status, response.getheader("x-request-id"), orjson.loads(response.read())) == (
        200,
        "r-1",
        {"species": "Iris setosa"},
    )


def test_serve_path_does_not_import_training_libraries() -> None:
    """Start-up time and memory: sklearn, skl2onnx and onnx are for training only."""
    code = (
        "import sys; from model_api.server import build_server; from model_api.settings import Settings; "
        "build_server(Settings()).app.startup(); "
        "print(sorted(m for m in ('sklearn', 'skl2onnx', 'onnx', 'scipy') if m in sys.modules))"
    )

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr
