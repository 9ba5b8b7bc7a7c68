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
        self._documents: tuple[object, bytes, bytes] | None = None

    def _document(self) -> tuple[bytes, bytes]:
        """/openapi.json and /docs, built on first use and again once the model has loaded (its signature
        shapes the prediction schemas)."""
        model = self.state.model
        key = model.signature if model.ready else None
        if self._documents is None or self._documents[0] is not key:
            document = openapi_document(self.state.settings, self.state.routes, model)
            self._documents = (key, json_response(document).body, docs.page(document).encode())
        return self._documents[1], self._documents[2]

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
        return Response(self._document()[0])

    async def docs(self, request: Request) -> Response:
        return Response(self._document()[1], content_type=_HTML)


def routes(state: ServiceState) -> dict[str, Route]:
    return OpsRoutes(state).routes()
