"""A real HTTP/1.1 server on loopback that can misbehave on cue: an error status, a truncated body, a stall.

    with FlakyHTTPServer() as http:
        url = http.add("/model.onnx", data, status(500), status(500))   # two 500s, then the body
        url = http.add("/cut.onnx", data, *[truncate(1000)] * 10)       # always cut after 1,000 bytes
        url = http.add("/stuck.onnx", data, stall(after=100))           # 100 bytes, then nothing
        http.hits("/model.onnx")                                        # requests answered so far

Each path answers its script in order, one entry per request, then the whole body with 200 forever.
Every answer declares the full Content-Length, so a cut or a stall is a protocol-level truncation a
client must notice. A stalled answer holds its connection until the server stops.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from loadtest.chart.localpod import LOOPBACK
from tests.servers.tls import Certificate

STALL_LIMIT_SECONDS = 600.0  # a stalled handler gives up by itself even if the server is never stopped


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body_bytes: int | None = None  # send only this many bytes of the body (None: all of it)
    stall: bool = False  # after those bytes, keep the connection open and silent instead of closing it
    retry_after: int | None = None  # a Retry-After header (seconds) on an error status


OK = Answer()


def status(code: int, *, retry_after: int | None = None) -> Answer:
    """Answer with this status and a short text body instead of the artifact (and Retry-After if given)."""
    return Answer(status=code, retry_after=retry_after)


def truncate(after: int) -> Answer:
    """Declare the whole body's length, send `after` bytes of it, close the connection."""
    return Answer(body_bytes=after)


def stall(after: int = 0) -> Answer:
    """Declare the whole body's length, send `after` bytes of it, then go silent."""
    return Answer(body_bytes=after, stall=True)


@dataclass
class _Route:
    body: bytes
    script: list[Answer]
    hits: int = 0


class FlakyHTTPServer:
    """Plain HTTP, or HTTPS with `tls` (a client trusts it through SSL_CERT_FILE=tls.cert)."""

    def __init__(self, tls: Certificate | None = None) -> None:
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler_class())
        self._server.daemon_threads = True
        self.scheme = "https" if tls else "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="flaky-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}{path}"

    def add(self, path: str, body: bytes, *script: Answer) -> str:
        """Serve `body` at `path` after the misbehaviours in `script`; returns the URL."""
        with self._lock:
            self._routes[path] = _Route(body, list(script))
        return self.url(path)

    def hits(self, path: str) -> int:
        with self._lock:
            return self._routes[path].hits

    def start(self) -> FlakyHTTPServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and release stalled connections; afterwards connections are refused."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> FlakyHTTPServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def _next_answer(self, path: str) -> tuple[Answer, bytes] | None:
        with self._lock:
            route = self._routes.get(path)
            if route is None:
                return None
            route.hits += 1
            return (route.script.pop(0) if route.script else OK), route.body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.close_connection = True
                planned = server._next_answer(self.path.partition("?")[0])
                if planned is None:
                    self._send(404, b"no such path\n")
                    return
                answer, body = planned
                if answer.status != 200:
                    retry = {"Retry-After": str(answer.retry_after)} if answer.retry_after is not None else {}
                    self._send(answer.status, f"scripted {answer.status}\n".encode(), retry)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if answer.body_bytes is None else body[: answer.body_bytes])
                self.wfile.flush()
                if answer.stall:
                    server._stopped.wait(STALL_LIMIT_SECONDS)

            def _send(self, code: int, text: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
                pass

        return Handler
