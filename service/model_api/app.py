"""The ASGI application: `create_app(settings)` wires state and route tables; `App.__call__` dispatches.

Per request: one dict lookup for the route, an optional API-key check, the handler, one error handler
turning any ApiError into `{"error": ...}`, then metrics and the access log (skipped for probes).
"""

from __future__ import annotations

import hmac
import itertools
import logging
import os
import time
from collections.abc import Callable

import orjson

from model_api import faults, metrics
from model_api.errors import ApiError, MethodNotAllowed, NotFound, Unauthorized
from model_api.http import CLOSE, ClientGone, Handler, Request, Response, Route
from model_api.logs import AccessLog, request_id_var
from model_api.model import OnnxModel
from model_api.routes import kserve_v1, ops, seed, v2
from model_api.settings import Settings
from model_api.state import ServiceState

log = logging.getLogger(__name__)

_UNMATCHED = "unmatched"  # metrics label for unknown paths: clients must not create label values
_MAX_REQUEST_ID = 128
# Generated ids: a random per-process prefix and a counter; unique across replicas, and ~10x cheaper
# than uuid4 (which reads os.urandom on every call).
_REQUEST_ID_PREFIX = os.urandom(10).hex()
_request_counter = itertools.count(1)
_ROUTE_MODULES = (seed, kserve_v1, v2, ops)
_VERSIONS = "/versions/"
_VERSIONED_ACTIONS = ("", "ready", "infer")


class App:
    def __init__(self, state: ServiceState, routes: dict[str, Route], access_log: AccessLog | None) -> None:
        self.state = state
        self.routes = routes
        self.access_log = access_log
        self._metrics = {r.template: metrics.HTTP.route(r.template) for r in routes.values()}
        self._metrics[_UNMATCHED] = metrics.HTTP.route(_UNMATCHED)
        api_key = state.settings.api_key
        self._api_key = api_key.encode() if api_key else None
        self._model_prefixes = ("/v1/models/", "/v2/models/")
        self._faults = faults.from_settings(state.settings)  # None unless a rehearsal asks

    def startup(self) -> None:
        """Load the model; a failure leaves the app serving with readiness 503."""
        if self.state.load_model():
            # Known only now: the artifact's version, which names the versioned V2 routes.
            for path, route in v2.versioned_routes(self.state).items():
                self.routes[path] = route
                self._metrics[route.template] = metrics.HTTP.route(route.template)

    def shutdown(self) -> None:
        if self.access_log is not None:
            self.access_log.close()
        self.state.close()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websocket: no handler; uvicorn closes the connection

    async def _http(self, scope: dict, receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = _request_id(headers.get(b"x-request-id"))
        token = request_id_var.set(request_id)
        route = self.routes.get(scope["path"])
        observed = route is None or route.observed
        if observed:
            metrics.HTTP.in_flight += 1
        status = 499  # nginx's "client closed request": kept if the client leaves before the answer
        try:
            request = Request(scope, receive, headers, request_id)
            response = await self._respond(route, request)
            extra = response.headers
            if request.unread_body() and not await request.discard_body():  # a refusal before the body
                extra = (*extra, CLOSE)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (b"content-type", response.content_type),
                        (b"content-length", str(len(response.body)).encode()),
                        (b"x-request-id", request_id.encode()),
                        *extra,
                    ],
                }
            )
            # HEAD: the GET answer's status and headers (Content-Length included), without its body.
            body = b"" if scope["method"] == "HEAD" else response.body
            await send({"type": "http.response.body", "body": body})
            status = response.status
        except ClientGone:
            pass
        finally:  # bookkeeping also when the request is cancelled (shutdown timeout)
            route_metrics = self._metrics[route.template if route is not None else _UNMATCHED]
            route_metrics.count(status)
            if observed:
                metrics.HTTP.in_flight -= 1
                elapsed = time.perf_counter() - started
                route_metrics.observe(elapsed)
                if self.access_log is not None:
                    duration_ms = round(elapsed * 1000, 3)
                    self.access_log.log(scope["method"], scope["path"], status, duration_ms, request_id)
            request_id_var.reset(token)

    async def _respond(self, route: Route | None, request: Request) -> Response:
        try:
            if route is None:
                raise self._not_found(request.path)
            handler = route.handlers.get(request.method)
            if handler is None:
                handler = self._head_or_refuse(route, request)
            if route.protected and self._api_key is not None:
                self._authorize(request.headers)
            if route.protected and self._faults is not None:
                await self._faults.inject()
            return await handler(request)
        except ApiError as error:
            return _error_response(error)
        except ClientGone:
            raise
        except Exception:
            log.exception("unhandled error serving %s %s", request.method, request.path)
            return Response(orjson.dumps({"error": f"internal error; request id {request.request_id}"}), 500)

    @staticmethod
    def _head_or_refuse(route: Route, request: Request) -> Handler:
        """HEAD is served by the GET handler (load balancers probe with it); any other method gets 405."""
        get = route.handlers.get("GET")
        if get is not None and request.method == "HEAD":
            return get
        allowed = route.allowed + (("HEAD",) if get is not None else ())
        raise MethodNotAllowed(request.method, request.path, tuple(sorted(allowed)))

    def _authorize(self, headers: dict[bytes, bytes]) -> None:
        assert self._api_key is not None
        presented = headers.get(b"x-api-key")
        if presented is None:
            authorization = headers.get(b"authorization", b"")
            if authorization[:7].lower() == b"bearer ":
                presented = authorization[7:].strip()
        if presented is None:
            raise Unauthorized("missing API key: send header X-API-Key or Authorization: Bearer")
        if not hmac.compare_digest(presented, self._api_key):
            raise Unauthorized("invalid API key")

    def _not_found(self, path: str) -> NotFound:
        for prefix in self._model_prefixes:
            if path.startswith(prefix):
                name = path[len(prefix) :].split("/", 1)[0].split(":", 1)[0]
                if name != self.state.settings.model_name:
                    return NotFound(
                        f"model {name!r} not found; this server serves {self.state.settings.model_name!r}"
                    )
                version = (
                    _requested_version(path[len(prefix) + len(name) :]) if prefix == "/v2/models/" else None
                )
                if version is not None:
                    served = self.state.require_model().info  # 503 while the model is not loaded
                    assert served is not None
                    return NotFound(
                        f"model {name!r} has no version {version[:64]!r}; "
                        f"this server serves version {served.version!r}"
                    )
        return NotFound(f"no route for {path[:200]}; see /openapi.json")

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings) -> App:
    """Everything is built here, nothing at import time; the model loads at lifespan startup."""
    model = OnnxModel(settings.model_path, settings.model_name, version=settings.model_version)
    state = ServiceState(settings=settings, model=model)
    routes = state.routes
    for module in _ROUTE_MODULES:
        routes.update(module.routes(state))
    access_log = AccessLog(settings.log_format) if settings.log_level in ("debug", "info") else None
    return App(state, routes, access_log)


def _requested_version(rest: str) -> str | None:
    """The version in `/versions/<version>[/ready|/infer]` (the tail of a V2 model path), else None."""
    if not rest.startswith(_VERSIONS):
        return None
    version, _, action = rest[len(_VERSIONS) :].partition("/")
    return version if version and action in _VERSIONED_ACTIONS else None


def _error_response(error: ApiError) -> Response:
    return Response(orjson.dumps({"error": error.message}), error.status, headers=error.headers)


def _request_id(incoming: bytes | None) -> str:
    """The caller's id when it is short printable ASCII (it lands in logs and headers); else a new one."""
    if incoming and len(incoming) <= _MAX_REQUEST_ID and incoming.isascii():
        text = incoming.decode()
        if text.isprintable() and " " not in text:
            return text
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):012x}"
