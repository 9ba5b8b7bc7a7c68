"""The few HTTP pieces the app needs on top of raw ASGI: request, response, route.

A framework (FastAPI, Starlette) would cost more per request than the model itself; these classes keep
the hot path to a dict lookup, one handler call and two `send` calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson

from model_api.errors import BadRequest, PayloadTooLarge

JSON_TYPE = b"application/json"
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
# Lingering close, as nginx does it: a client that writes its whole body before reading the answer (urllib,
# most scripts) sees a refusal only if the server reads the rest of that body first. Closing with unread
# bytes makes the kernel send a reset, and the client gets "connection reset" instead of the 413. Beyond
# these bounds the client is more likely an attack than a script: the connection is closed.
DISCARD_LIMIT_BYTES = 64 * 2**20
DISCARD_SECONDS = 10.0
CLOSE = (b"connection", b"close")


class ClientGone(Exception):
    """The client disconnected before sending its whole body; there is nobody to answer."""


class Request:
    """One HTTP request: lazy access to query, headers and body, so a route pays only for what it reads."""

    __slots__ = ("_body_done", "_query", "_received", "headers", "receive", "request_id", "scope")

    def __init__(self, scope: dict, receive: Callable, headers: dict[bytes, bytes], request_id: str) -> None:
        self.scope = scope
        self.receive = receive
        self.headers = headers
        self.request_id = request_id
        self._query: dict[str, str] | None = None
        self._received: int | None = None  # body bytes read so far; None before the first receive()
        self._body_done = False

    @property
    def method(self) -> str:
        return self.scope["method"]

    @property
    def path(self) -> str:
        return self.scope["path"]

    def query(self) -> dict[str, str]:
        """Query parameters; a name given twice is refused rather than silently picking one."""
        if self._query is None:
            pairs = _parse_query(self.scope["query_string"].decode("latin-1"))
            self._query = dict(pairs)
            if len(self._query) != len(pairs):
                _refuse_repeated(pairs)
        return self._query

    async def body(self, limit: int) -> bytes:
        """The whole body, refused with 413 as soon as it is known to exceed `limit` bytes."""
        declared = self.headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise BadRequest(f"Content-Length {declared.decode('latin-1')!r} is not an integer") from None
            if size > limit:
                raise PayloadTooLarge(f"request body of {size} bytes exceeds MAX_BODY_BYTES={limit}")
        chunks: list[bytes] = []
        received = self._received = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self._body_done = True
                raise ClientGone
            chunk = message.get("body", b"")
            received += len(chunk)
            self._received = received
            if not message.get("more_body", False):
                self._body_done = True
            if received > limit:  # chunked uploads have no Content-Length: count while streaming
                raise PayloadTooLarge(f"request body exceeds MAX_BODY_BYTES={limit}")
            chunks.append(chunk)
            if self._body_done:
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def unread_body(self) -> bool:
        """Whether the client sent, or announced, body bytes that nobody has read yet."""
        if self._body_done:
            return False
        headers = self.headers
        return b"transfer-encoding" in headers or headers.get(b"content-length", b"0") != b"0"

    async def discard_body(self) -> bool:
        """Read and drop the rest of the body (DISCARD_LIMIT_BYTES within DISCARD_SECONDS at most), so that
        the answer reaches a client still writing; whether the body was read to its end, which keeps the
        connection usable. False: the answer must close the connection."""
        if self._received is None:
            if self.headers.get(b"expect", b"").lower() == b"100-continue":
                return False  # the client sends nothing until told to continue: refuse it without reading
            declared = self.headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > DISCARD_LIMIT_BYTES:
                return False  # no point reading what will be cut off anyway
        discarded = 0
        try:
            async with asyncio.timeout(DISCARD_SECONDS):
                while discarded <= DISCARD_LIMIT_BYTES:
                    message = await self.receive()
                    if message["type"] == "http.disconnect":
                        return False
                    discarded += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        self._body_done = True
                        return True
        except TimeoutError:
            pass
        return False

    async def json(self, limit: int) -> Any:
        return parse_json(await self.body(limit))


def _parse_query(text: str) -> list[tuple[str, str]]:
    if "%" in text or "+" in text:  # escapes to decode: the standard parser
        return parse_qsl(text, keep_blank_values=True)
    # Plain `a=1&b=2`, the common case, without parse_qsl's per-pair unquoting (a quarter of classify's time).
    return [(name, value) for name, _, value in (part.partition("=") for part in text.split("&") if part)]


def _refuse_repeated(pairs: list[tuple[str, str]]) -> None:
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise BadRequest(f"query parameter {name!r} given more than once")
        seen.add(name)


def parse_json(raw: bytes) -> Any:
    if not raw:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


class Response:
    __slots__ = ("body", "content_type", "headers", "status")

    def __init__(
        self,
        body: bytes,
        status: int = 200,
        content_type: bytes = JSON_TYPE,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.body = body
        self.status = status
        self.content_type = content_type
        self.headers = headers


def json_response(content: Any, status: int = 200) -> Response:
    """JSON body via orjson; numpy arrays serialise directly (no tolist() round trip)."""
    return Response(orjson.dumps(content, option=_DUMP_OPTIONS), status)


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Route:
    """Handlers of one path by method. `template` labels metrics (bounded cardinality)."""

    template: str
    handlers: Mapping[str, Handler]
    protected: bool = False  # prediction routes: need the API key when one is configured
    observed: bool = True  # False for probes and /metrics: no latency metrics, no access log

    @property
    def allowed(self) -> tuple[str, ...]:
        return tuple(sorted(self.handlers))
