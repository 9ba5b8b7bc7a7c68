"""Every client reads the refusal of a body it is still writing: urllib, requests and a raw socket, with a
declared (Content-Length) and a chunked body.

urllib and a plain socket write the whole body before reading anything; had the server closed with that
body unread, the kernel would have answered with a reset and the client would see "connection reset"
instead of the 413 (the server reads and drops the rest first, as nginx's lingering close does).
"""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import orjson
import pytest
import requests
from model_api import http
from model_api.http import DISCARD_LIMIT_BYTES

from tests.service.server_process import ServerProcess

pytestmark = pytest.mark.slow
INFER = "/v2/models/iris/infer"
MAX_BODY_BYTES = 1_048_576  # the default the live server runs with
BODY_BYTES = 8 * 2**20  # far beyond what the socket buffers absorb: the client is still writing at refusal
CHUNK = b"x" * 2**16
DECLARED_REFUSAL = {"error": f"request body of {BODY_BYTES} bytes exceeds MAX_BODY_BYTES={MAX_BODY_BYTES}"}
STREAMED_REFUSAL = {"error": f"request body exceeds MAX_BODY_BYTES={MAX_BODY_BYTES}"}


def chunks() -> Iterator[bytes]:
    for _ in range(BODY_BYTES // len(CHUNK)):
        yield CHUNK


def via_urllib(server: ServerProcess, path: str, chunked: bool) -> tuple[int, dict]:
    data = chunks() if chunked else b"x" * BODY_BYTES  # an iterator is sent chunked
    request = urllib.request.Request(
        server.url(path), data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def via_requests(server: ServerProcess, path: str, chunked: bool) -> tuple[int, dict]:
    data = chunks() if chunked else b"x" * BODY_BYTES  # a generator is sent chunked
    response = requests.post(server.url(path), data=data, timeout=30)
    return response.status_code, response.json()


def via_socket(server: ServerProcess, path: str, chunked: bool) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        # Connection: close, as a one-shot script would say: the server closes after answering.
        status, _, body = exchange(
            connection, post_head(path, chunked, extra="Connection: close\r\n"), chunked
        )
    return status, orjson.loads(body)


def post_head(path: str, chunked: bool, *, length: int = BODY_BYTES, extra: str = "") -> bytes:
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{framing}\r\n{extra}"
    return f"{head}\r\n".encode()


def exchange(connection: socket.socket, head: bytes, chunked: bool) -> tuple[int, dict[str, str], bytes]:
    """Write the request head and the whole body, and only then read the answer."""
    connection.sendall(head)
    for chunk in chunks():
        connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
    if chunked:
        connection.sendall(b"0\r\n\r\n")
    return read_response(connection)


def read_response(connection: socket.socket) -> tuple[int, dict[str, str], bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        data = connection.recv(65536)
        assert data, f"connection closed before a whole response head: {received!r}"
        received += data
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)
    }
    while len(body) < int(headers["content-length"]):
        data = connection.recv(65536)
        assert data, "connection closed inside the response body"
        body += data
    return int(status_line.split()[1]), headers, body


CLIENTS: dict[str, Callable[[ServerProcess, str, bool], tuple[int, dict]]] = {
    "urllib": via_urllib,
    "requests": via_requests,
    "socket": via_socket,
}


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
@pytest.mark.parametrize("client", CLIENTS)
def test_every_client_reads_the_413(live_server: ServerProcess, client: str, chunked: bool) -> None:
    expected = (413, STREAMED_REFUSAL if chunked else DECLARED_REFUSAL)

    assert CLIENTS[client](live_server, INFER, chunked) == expected


@pytest.mark.parametrize("client", CLIENTS)
def test_a_refusal_before_the_body_is_read_reaches_the_client_too(
    live_server: ServerProcess, client: str
) -> None:
    # An unknown model is refused from the path alone; the body was never going to be read.
    status, body = CLIENTS[client](live_server, "/v2/models/nope/infer", False)

    assert (status, body) == (404, {"error": "model 'nope' not found; this server serves 'iris'"})


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_the_connection_stays_usable_after_a_refused_body(live_server: ServerProcess, chunked: bool) -> None:
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=30) as connection:
        refused, headers, _ = exchange(connection, post_head(INFER, chunked), chunked)
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        after = read_response(connection)

    assert refused == 413
    assert headers.get("connection") != "close", headers
    assert (after[0], orjson.loads(after[2])) == (200, {"status": "alive"}), "next request, same connection"


def test_expect_100_continue_gets_the_413_instead_of_continue(live_server: ServerProcess) -> None:
    # curl's way for large bodies: it waits for "100 Continue" before sending any of it.
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=30) as connection:
        connection.sendall(post_head(INFER, False, extra="Expect: 100-continue\r\n"))
        status, headers, body = read_response(connection)

    assert (status, orjson.loads(body)) == (413, DECLARED_REFUSAL)
    assert headers["connection"] == "close", "the unsent body must not be read as the next request"


def test_a_body_beyond_the_discard_limit_is_refused_and_the_connection_closed(
    live_server: ServerProcess,
) -> None:
    # A client that reads while it writes still gets the answer; the server does not read a gigabyte.
    length = DISCARD_LIMIT_BYTES * 16
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=30) as connection:
        connection.sendall(post_head(INFER, False, length=length) + CHUNK)
        status, headers, body = read_response(connection)
        rest = connection.recv(65536)

    expected = {"error": f"request body of {length} bytes exceeds MAX_BODY_BYTES={MAX_BODY_BYTES}"}
    assert (status, orjson.loads(body)) == (413, expected)
    assert headers["connection"] == "close"
    assert rest == b"", "the server closed the connection"


def test_a_client_dribbling_its_body_is_cut_off_at_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "DISCARD_SECONDS", 0.05)
    sent: list[bytes] = []

    async def receive() -> dict:  # one byte now and then, forever
        await asyncio.sleep(0.01)
        sent.append(b"x")
        return {"type": "http.request", "body": b"x", "more_body": True}

    headers = {b"content-length": str(MAX_BODY_BYTES * 2).encode()}
    request = http.Request({"type": "http"}, receive, headers, "test")

    read_to_end = asyncio.run(request.discard_body())

    assert read_to_end is False, "the answer must close the connection"
    assert 0 < len(sent) < MAX_BODY_BYTES, "it read some, then gave up"
