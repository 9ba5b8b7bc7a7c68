"""The release's Service reached through the API server's service proxy, relayed on loopback.

`service_url(objects, namespace)` yields a loopback base URL for as long as the block runs. The relay
(ServiceProxy) sends each request on with the kubernetes client's credentials: the API server picks a
ready endpoint per request, so new pods take their share of the load, where a port-forward would pin every
connection to one pod and hide what the HPA does.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loadtest.chart import release


def service_path(objects: Sequence[release.Manifest], namespace: str) -> str:
    """The API server's proxy path to the release's Service port named http."""
    service = release.get(objects, "Service", release.workload(objects)["metadata"]["name"])
    port = next((p for p in service["spec"]["ports"] if p.get("name") == "http"), service["spec"]["ports"][0])
    name = service["metadata"]["name"]
    return f"/api/v1/namespaces/{namespace}/services/{name}:{port.get('name') or port['port']}/proxy"


HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
     "transfer-encoding", "upgrade", "host", "content-length", "authorization"}
)  # fmt: skip


class _RelayServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The load generator drops connections when it stops its users mid-request: not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ServiceProxy:
    """A loopback HTTP server relaying each request to a Service through the API server's service proxy,
    with the kubeconfig's credentials (what `kubectl proxy` does, without needing kubectl).

    The API server picks a ready endpoint per request, so the load spreads over the pods as they scale;
    a port-forward would pin it to one pod. The service's own API key must travel as X-API-Key here:
    the Authorization header carries the cluster credentials.
    """

    def __init__(self, api_client: Any, path: str, timeout: float = 30.0) -> None:
        self.base = api_client.configuration.host.rstrip("/") + path
        self._configuration = api_client.configuration
        self._pool = api_client.rest_client.pool_manager
        self._timeout = timeout
        self._server = _RelayServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="service-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def auth_headers(self) -> dict[str, str]:
        """The kubeconfig's header credentials (bearer token, refreshed by exec plugins); certificates are
        already in the connection pool."""
        return {
            setting["key"]: setting["value"]
            for setting in self._configuration.auth_settings().values()
            if setting.get("in") == "header" and setting.get("value")
        }

    def relay(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[int, list, bytes]:
        """(status, headers, body) of `method path` sent on to the Service; 502 when the API server fails."""
        forwarded = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP} | self.auth_headers()
        try:
            response = self._pool.request(
                method, self.base + path, body=body, headers=forwarded, timeout=self._timeout, retries=False
            )
        except Exception as exc:  # any transport failure is the proxy's answer, not a crash of the relay
            payload = json.dumps({"error": f"service proxy: {type(exc).__name__}: {exc}"}).encode()
            return 502, [("Content-Type", "application/json")], payload
        kept = [(k, v) for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP]
        return response.status, kept, response.data

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the load generator expects

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                status, headers, payload = proxy.relay(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

            def log_message(
                self, format: str, *args: Any
            ) -> None:  # one line per request would drown the run
                pass

        return Handler


@contextlib.contextmanager
def service_url(
    objects: Sequence[release.Manifest], namespace: str, context: str | None = None
) -> Iterator[str]:
    """A loopback base URL for the release's Service, for as long as the block runs (ServiceProxy)."""
    from kubernetes import client, config

    config.load_kube_config(context=context)
    with ServiceProxy(client.ApiClient(), service_path(objects, namespace)) as url:
        yield url
