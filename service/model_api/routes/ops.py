"""Operations: liveness, readiness, Prometheus metrics, the OpenAPI document and its HTML page."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from model_api import docs
from model_api.errors import NotReady
from model_api.http import Request, Response, Route, json_response
from model_api.openapi import openapi_document
from model_api.state import ServiceState

_ALIVE = b'{"status":"alive"}'
_READY = b'{"status":"ready"}'
_HTML = b"text/html; charset=utf-8"


class OpsRoutes:
    def __init__(self, state: ServiceState) -> None:
        self.state = state
        document = openapi_document(state.settings)
        self._openapi = json_response(document).body
        self._docs = docs.page(document).encode()

    def routes(self) -> dict[str, Route]:
        return {
            "/healthz": Route("/healthz", {"GET": self.healthz}, observed=False),
            "/readyz": Route("/readyz", {"GET": self.readyz}, observed=False),
            "/metrics": Route("/metrics", {"GET": self.metrics}, observed=False),
            "/openapi.json": Route("/openapi.json", {"GET": self.openapi}),
            "/docs": Route("/docs", {"GET": self.docs}),
        }

    async def healthz(self, request: Request) -> Response:
        # Liveness = the event loop answers. A missing model is for readiness: a restart would not fix it.
        return Response(_ALIVE)

    async def readyz(self, request: Request) -> Response:
        if not self.state.ready:
            raise NotReady(f"not ready: {self.state.not_ready_reason()}")
        return Response(_READY)

    async def metrics(self, request: Request) -> Response:
        return Response(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.encode())

    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi)

    async def docs(self, request: Request) -> Response:
        return Response(self._docs, content_type=_HTML)


def routes(state: ServiceState) -> dict[str, Route]:
    return OpsRoutes(state).routes()
