"""An in-process ASGI client for route-level tests: no sockets, no server process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Result:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return orjson.loads(self.body)


class AsgiClient:
    def __init__(self, app: Any) -> None:
        self.app = app

    def get(self, path: str, **kwargs: Any) -> Result:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Result:
        if json is not None:
            kwargs["body"] = orjson.dumps(json)
        return self.request("POST", path, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        chunks: list[bytes] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Result:
        """`chunks` sends the body in several messages without Content-Length, like chunked encoding."""
        return asyncio.run(self._call(method, path, body, chunks, headers or {}))

    async def _call(
        self, method: str, path: str, body: bytes, chunks: list[bytes] | None, headers: dict[str, str]
    ) -> Result:
        path, _, query = path.partition("?")
        raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        if chunks is None:
            chunks = [body]
            if body and "content-length" not in {k.lower() for k in headers}:
                raw_headers.append((b"content-length", str(len(body)).encode()))
        messages = [
            {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
            for i, chunk in enumerate(chunks)
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        sent: list[dict] = []

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start = next(m for m in sent if m["type"] == "http.response.start")
        body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return Result(start["status"], body_out, {k.decode(): v.decode() for k, v in start["headers"]})
